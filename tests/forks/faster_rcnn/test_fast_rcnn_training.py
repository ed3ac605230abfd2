"""Fast R-CNN training: the data layer's Fast R-CNN mode (precomputed proposals) on a
small-backbone variant of py-faster-rcnn's ZF fast_rcnn/train.prototxt, against a numpy
transcription of roi_data_layer/layer.py + minibatch.py on the same stream, and 16 SGD steps."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

import caffe
from recaffe.forks.faster_rcnn import boxes, config, roi_data
from tests.forks.faster_rcnn import shapes
from tests.forks.test_dialects import FIXTURES

NET = FIXTURES / "fast_rcnn_tiny_train.prototxt"


@pytest.fixture
def cfg() -> Iterator[Any]:
    saved = config.cfg
    config.cfg = config.defaults()
    config.cfg.TRAIN.SCALES = (128, 96)
    config.cfg.TRAIN.BATCH_SIZE = 64
    yield config.cfg
    config.cfg = saved


def with_proposals(count: int, seed: int) -> list[dict[str, Any]]:
    """The shapes roidb plus 60 proposals per image: jittered ground truth and random boxes."""
    random = np.random.RandomState(seed)
    entries = shapes.roidb(count, seed=seed)
    for entry in entries:
        gt = entry["boxes"]
        jitter = np.repeat(gt, 20, axis=0) + random.uniform(-12, 12, size=(len(gt) * 20, 4))
        corner = random.uniform(0, 90, size=(60 - len(jitter), 2))
        extra = np.hstack((corner, corner + random.uniform(10, 38, size=corner.shape)))
        proposals = np.clip(np.vstack((jitter, extra))[:60], 0, 127).astype(np.float32)
        proposals[:, 2:] = np.maximum(proposals[:, 2:], proposals[:, :2] + 1)
        entry["boxes"] = np.vstack((gt, proposals))
        entry["gt_classes"] = np.concatenate((entry["gt_classes"], np.zeros(len(proposals), dtype=np.int32)))
    return entries


def test_prepare_roidb_adds_py_faster_rcnns_fields(cfg: Any) -> None:
    entries = with_proposals(3, seed=1)
    means, stds = roi_data.prepare_roidb(entries, 4)
    cfg.TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED = True
    np.testing.assert_array_equal(roi_data.prepare_roidb(with_proposals(3, seed=1), 4)[1],
                                  np.tile([0.1, 0.1, 0.2, 0.2], 4))
    for entry in entries:
        gt = np.where(entry["gt_classes"] > 0)[0]
        assert (entry["max_overlaps"][gt] == 1).all()
        assert (entry["max_classes"][gt] == entry["gt_classes"][gt]).all()
        assert ((entry["max_classes"] > 0) == (entry["max_overlaps"] > 0)).all()
        t = entry["bbox_targets"]
        rows = np.where(t[:, 0] > 0)[0]
        assert set(rows) == set(np.where(entry["max_overlaps"] >= 0.5)[0])
        # un-normalized, each row's deltas move its box onto a ground-truth box of its class
        cls = t[rows, 0].astype(int)
        deltas = t[rows, 1:] * stds.reshape(4, 4)[cls] + means.reshape(4, 4)[cls]
        moved = boxes.bbox_transform_inv(torch.from_numpy(entry["boxes"][rows].astype(np.float64)),
                                         torch.from_numpy(deltas)).numpy()
        moved[:, 2:] -= 1
        for box, c in zip(moved, cls):
            same = entry["boxes"][gt][entry["gt_classes"][gt] == c]
            assert np.abs(same - box).max(axis=1).min() < 1e-3


def sample_ref(roidb: list[dict[str, Any]], random: np.random.RandomState, train: Any,
               batches: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """roi_data_layer/layer.py (ASPECT_GROUPING shuffle) and minibatch.py's _sample_rois:
    (rois, labels) of each batch."""
    def shuffle() -> np.ndarray:
        widths = np.array([r["width"] for r in roidb])
        heights = np.array([r["height"] for r in roidb])
        horz = widths >= heights
        inds = np.hstack((random.permutation(np.where(horz)[0]), random.permutation(np.where(~horz)[0])))
        inds = np.reshape(inds, (-1, 2))
        return np.reshape(inds[random.permutation(np.arange(inds.shape[0])), :], (-1,))

    perm, cur, out = shuffle(), 0, []
    for _ in range(batches):
        if cur + train.IMS_PER_BATCH >= len(roidb):
            perm, cur = shuffle(), 0
        db = [roidb[i] for i in perm[cur:cur + train.IMS_PER_BATCH]]
        cur += train.IMS_PER_BATCH
        scale_inds = random.randint(0, high=len(train.SCALES), size=len(db))
        per_image = train.BATCH_SIZE // len(db)
        fg_per_image = np.round(train.FG_FRACTION * per_image)
        rois_blob, labels_blob = np.zeros((0, 5)), np.zeros(0)
        for i, entry in enumerate(db):
            labels, overlaps, rois = entry["max_classes"], entry["max_overlaps"], entry["boxes"]
            fg = np.where(overlaps >= train.FG_THRESH)[0]
            fg_count = int(np.minimum(fg_per_image, fg.size))
            if fg.size > 0:
                fg = random.choice(fg, size=fg_count, replace=False)
            bg = np.where((overlaps < train.BG_THRESH_HI) & (overlaps >= train.BG_THRESH_LO))[0]
            bg_count = np.minimum(per_image - fg_count, bg.size)
            if bg.size > 0:
                bg = random.choice(bg, size=bg_count, replace=False)
            keep = np.append(fg, bg)
            labels = labels[keep].astype(np.float64)
            labels[fg_count:] = 0
            scale = train.SCALES[scale_inds[i]] / 128.0
            rois_blob = np.vstack((rois_blob, np.hstack((i * np.ones((len(keep), 1)), rois[keep] * scale))))
            labels_blob = np.hstack((labels_blob, labels))
        out.append((rois_blob, labels_blob))
    return out


def test_fast_rcnn_minibatches_equal_py_faster_rcnns(cfg: Any) -> None:
    entries = with_proposals(6, seed=2)  # an even count: py-faster-rcnn pairs them
    roi_data.prepare_roidb(entries, 4)
    net = caffe.Net(str(NET), caffe.TRAIN)
    layer = net.layers[0]
    layer.random = np.random.RandomState(4)
    layer.set_roidb(entries)
    expected = sample_ref(entries, np.random.RandomState(4), cfg.TRAIN, batches=4)
    for rois, labels in expected:
        net.forward()
        np.testing.assert_allclose(net.blobs["rois"].data, rois, rtol=0, atol=1e-4)
        np.testing.assert_array_equal(net.blobs["labels"].data, labels)
        assert net.blobs["data"].data.shape[0] == 2
        inside = net.blobs["bbox_inside_weights"].data.reshape(-1, 4, 4).sum(axis=2) > 0
        assert inside.sum(axis=1).tolist() == (labels > 0).astype(int).tolist()


def test_fast_rcnn_trains(cfg: Any, tmp_path: pathlib.Path) -> None:
    torch.set_num_threads(1)
    entries = with_proposals(8, seed=3)
    roi_data.prepare_roidb(entries, 4)
    (tmp_path / "solver.prototxt").write_text(
        f'train_net: "{NET}"\nbase_lr: 0.01 lr_policy: "fixed" momentum: 0.9 weight_decay: 0.0005\n'
        f'random_seed: 5 display: 0 max_iter: 100 snapshot_prefix: "{tmp_path / "snap"}"\n')
    solver = caffe.SGDSolver(str(tmp_path / "solver.prototxt"))
    solver.net.layers[0].set_roidb(entries)
    history = []
    for _ in range(16):
        solver.step(1)
        history.append([float(solver.net.blobs[name].data) for name in ("loss_cls", "loss_bbox")])
        assert float(np.abs(solver.net.params["conv1"][0].diff).sum()) > 0
    losses = np.array(history)
    assert np.isfinite(losses).all()
    # the classification loss falls (16 steps teach mostly the background share; the box loss,
    # on targets normalized by 0.1/0.2, moves little that early)
    assert losses[-4:, 0].mean() < 0.8 * losses[:4, 0].mean(), losses[:, 0]


def test_fast_rcnn_mode_asks_for_the_prepared_fields(cfg: Any) -> None:
    net = caffe.Net(str(NET), caffe.TRAIN)
    with pytest.raises(ValueError, match="entry 0 lacks max_classes, max_overlaps, bbox_targets"):
        net.layers[0].set_roidb(shapes.roidb(2))
    config.end2end()
    with pytest.raises(RuntimeError, match=r"end-to-end \(cfg.TRAIN.HAS_RPN\) mode produces 3 tops, got 6"):
        caffe.Net(str(NET), caffe.TRAIN)
