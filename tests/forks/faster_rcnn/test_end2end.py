"""Faster R-CNN end-to-end training: a small-backbone variant of py-faster-rcnn's ZF end2end
train.prototxt (its Python data, anchor target, proposal and proposal target layers resolved to
recaffe's stand-ins) trains on a generated shapes data set through pycaffe's API, as
py-faster-rcnn's tools/train_net.py drives it."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import numpy as np
import pytest
import torch

import caffe
from recaffe.forks.faster_rcnn import boxes, config
from tests.forks.faster_rcnn import shapes
from tests.forks.test_dialects import FIXTURES

LOSSES = ("rpn_cls_loss", "rpn_loss_bbox", "loss_cls", "loss_bbox")


@pytest.fixture
def end2end_cfg() -> Iterator[None]:
    saved = config.cfg
    config.cfg = config.defaults()
    config.end2end()
    config.cfg.TRAIN.SCALES = (128,)
    yield
    config.cfg = saved


def solver(tmp_path: pathlib.Path, seed: int = 3) -> caffe.SGDSolver:
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "solver.prototxt"
    path.write_text(f'train_net: "{FIXTURES / "faster_rcnn_tiny_end2end_train.prototxt"}"\n'
                    f'base_lr: 0.005 lr_policy: "fixed" momentum: 0.9 weight_decay: 0.0005\n'
                    f'random_seed: {seed} display: 0 max_iter: 100 snapshot_prefix: "{tmp_path / "snap"}"\n')
    made = caffe.SGDSolver(str(path))
    made.net.layers[0].set_roidb(shapes.roidb(12))
    return made


def test_end2end_targets_are_py_faster_rcnns(end2end_cfg: None, tmp_path: pathlib.Path) -> None:
    net = solver(tmp_path).net
    net.forward()
    gt = net.blobs["gt_boxes"].data
    assert net.blobs["data"].data.shape == (1, 3, 128, 128) and gt.shape[1] == 5
    np.testing.assert_array_equal(net.blobs["im_info"].data, [[128, 128, 1]])
    # RPN targets: labelled anchors at most RPN_BATCHSIZE, foreground at most half of it; each
    # foreground anchor's targets move it onto a ground-truth box
    labels = net.blobs["rpn_labels"].data.reshape(6, 8, 8)
    assert 0 < (labels == 1).sum() <= 128 and (labels >= 0).sum() <= 256
    anchors = boxes.shifted_anchors(boxes.generate_anchors(scales=[2, 4]), 8, 8, 16, torch.device("cpu"))
    targets = torch.from_numpy(net.blobs["rpn_bbox_targets"].data[0].reshape(6, 4, 8, 8).transpose(2, 3, 0, 1)
                               .reshape(-1, 4).copy())
    foreground = torch.from_numpy(labels.transpose(1, 2, 0).reshape(-1) == 1)
    moved = boxes.bbox_transform_inv(anchors[foreground], targets[foreground]).numpy()
    ends = moved.copy()
    ends[:, 2:] -= 1  # bbox_transform_inv's corners are exclusive at the far end
    assert all(np.abs(ends[i] - gt[:, :4]).max(axis=1).min() < 1e-3 for i in range(len(ends)))
    weights = net.blobs["rpn_bbox_outside_weights"].data
    np.testing.assert_allclose(weights.sum() / 4, 1.0, rtol=1e-5)  # 1/(labelled anchors) each
    # detection head targets: 128 rois, foreground labelled with their box's class, at most 32
    cls = net.blobs["labels"].data
    assert net.blobs["rois"].data.shape == (128, 5) and 0 < (cls > 0).sum() <= 32
    assert set(np.unique(cls).tolist()) <= {0, 1, 2, 3}
    inside = net.blobs["bbox_inside_weights"].data
    assert (inside.reshape(128, 4, 4).sum(axis=2) > 0).sum(axis=1).tolist() == (cls > 0).astype(int).tolist()


def test_end2end_trains_deterministically_and_reduces_the_loss(end2end_cfg: None,
                                                                tmp_path: pathlib.Path) -> None:
    torch.set_num_threads(1)
    first = solver(tmp_path / "a")
    net = first.net
    history = []
    for step in range(16):
        first.step(1)
        history.append([float(net.blobs[name].data) for name in LOSSES])
        if step == 0:  # gradients reach the backbone through both heads
            for layer in ("conv1", "rpn_cls_score", "cls_score", "bbox_pred"):
                assert float(np.abs(net.params[layer][0].diff).sum()) > 0, layer
    losses = np.array(history)
    assert np.isfinite(losses).all()
    before, after = losses[:4].sum(axis=1).mean(), losses[-4:].sum(axis=1).mean()
    assert after < 0.7 * before, (before, after)
    again = solver(tmp_path / "b")
    again.step(3)
    np.testing.assert_array_equal([float(again.net.blobs[name].data) for name in LOSSES], history[2])
