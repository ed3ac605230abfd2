"""The training stand-ins against numpy transcriptions of py-faster-rcnn's layers
(lib/rpn/anchor_target_layer.py, lib/rpn/proposal_target_layer.py, lib/roi_data_layer/), drawing
from the same numpy stream, and the data layer's image handling."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

import caffe
from recaffe.forks.faster_rcnn import boxes, config
from tests.forks.faster_rcnn import shapes


@pytest.fixture
def cfg() -> Iterator[Any]:
    saved = config.cfg
    config.cfg = config.defaults()
    config.end2end()
    yield config.cfg
    config.cfg = saved


def overlaps_ref(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """utils/bbox.pyx's bbox_overlaps, loop for loop."""
    out = np.zeros((len(a), len(b)))
    for k in range(len(b)):
        area = (b[k, 2] - b[k, 0] + 1) * (b[k, 3] - b[k, 1] + 1)
        for n in range(len(a)):
            iw = min(a[n, 2], b[k, 2]) - max(a[n, 0], b[k, 0]) + 1
            if iw > 0:
                ih = min(a[n, 3], b[k, 3]) - max(a[n, 1], b[k, 1]) + 1
                if ih > 0:
                    ua = (a[n, 2] - a[n, 0] + 1) * (a[n, 3] - a[n, 1] + 1) + area - iw * ih
                    out[n, k] = iw * ih / ua
    return out


def transform_ref(ex: np.ndarray, gt: np.ndarray) -> np.ndarray:
    ew, eh = ex[:, 2] - ex[:, 0] + 1.0, ex[:, 3] - ex[:, 1] + 1.0
    gw, gh = gt[:, 2] - gt[:, 0] + 1.0, gt[:, 3] - gt[:, 1] + 1.0
    ex_x, ex_y = ex[:, 0] + 0.5 * ew, ex[:, 1] + 0.5 * eh
    gt_x, gt_y = gt[:, 0] + 0.5 * gw, gt[:, 1] + 0.5 * gh
    return np.vstack(((gt_x - ex_x) / ew, (gt_y - ex_y) / eh, np.log(gw / ew), np.log(gh / eh))).transpose()


def anchor_target_ref(height: int, width: int, gt: np.ndarray, im_info: np.ndarray, anchors: np.ndarray,
                      random: np.random.RandomState, c: Any) -> list[np.ndarray]:
    """anchor_target_layer.py's forward (allowed_border 0, feat_stride 16)."""
    shift_x, shift_y = np.meshgrid(np.arange(0, width) * 16, np.arange(0, height) * 16)
    shifts = np.vstack((shift_x.ravel(), shift_y.ravel(), shift_x.ravel(), shift_y.ravel())).transpose()
    count = anchors.shape[0]
    every = anchors.reshape((1, count, 4)) + shifts.reshape((1, -1, 4)).transpose((1, 0, 2))
    every = every.reshape((-1, 4))
    total = every.shape[0]
    inside = np.where((every[:, 0] >= 0) & (every[:, 1] >= 0) & (every[:, 2] < im_info[1])
                      & (every[:, 3] < im_info[0]))[0]
    a = every[inside, :]
    labels = np.empty((len(inside),), dtype=np.float32)
    labels.fill(-1)
    overlaps = overlaps_ref(a.astype(float), gt.astype(float))
    argmax = overlaps.argmax(axis=1)
    best = overlaps[np.arange(len(inside)), argmax]
    gt_argmax = overlaps.argmax(axis=0)
    gt_best = overlaps[gt_argmax, np.arange(overlaps.shape[1])]
    gt_argmax = np.where(overlaps == gt_best)[0]
    labels[best < c.RPN_NEGATIVE_OVERLAP] = 0
    labels[gt_argmax] = 1
    labels[best >= c.RPN_POSITIVE_OVERLAP] = 1
    num_fg = int(c.RPN_FG_FRACTION * c.RPN_BATCHSIZE)
    fg = np.where(labels == 1)[0]
    if len(fg) > num_fg:
        labels[random.choice(fg, size=(len(fg) - num_fg), replace=False)] = -1
    num_bg = c.RPN_BATCHSIZE - np.sum(labels == 1)
    bg = np.where(labels == 0)[0]
    if len(bg) > num_bg:
        labels[random.choice(bg, size=(len(bg) - num_bg), replace=False)] = -1
    targets = transform_ref(a, gt[argmax, :4]).astype(np.float32, copy=False)
    inside_w = np.zeros((len(inside), 4), dtype=np.float32)
    inside_w[labels == 1, :] = np.array(c.RPN_BBOX_INSIDE_WEIGHTS)
    outside_w = np.zeros((len(inside), 4), dtype=np.float32)
    examples = np.sum(labels >= 0)
    outside_w[labels == 1, :] = np.ones((1, 4)) * 1.0 / examples
    outside_w[labels == 0, :] = np.ones((1, 4)) * 1.0 / examples

    def unmap(data: np.ndarray, fill: float) -> np.ndarray:
        ret = np.empty((total,) + data.shape[1:], dtype=np.float32)
        ret.fill(fill)
        ret[inside] = data
        return ret

    out = [unmap(labels, -1).reshape((1, height, width, count)).transpose(0, 3, 1, 2)
           .reshape((1, 1, count * height, width))]
    for data in (targets, inside_w, outside_w):
        out.append(unmap(data, 0).reshape((1, height, width, count * 4)).transpose(0, 3, 1, 2))
    return out


def proposal_target_ref(rois: np.ndarray, gt: np.ndarray, classes: int, random: np.random.RandomState,
                        c: Any) -> list[np.ndarray]:
    """proposal_target_layer.py's forward."""
    zeros = np.zeros((gt.shape[0], 1), dtype=gt.dtype)
    every = np.vstack((rois, np.hstack((zeros, gt[:, :-1]))))
    per_image = c.BATCH_SIZE
    fg_per_image = np.round(c.FG_FRACTION * per_image)
    overlaps = overlaps_ref(every[:, 1:5].astype(float), gt[:, :4].astype(float))
    assignment = overlaps.argmax(axis=1)
    best = overlaps.max(axis=1)
    labels = gt[assignment, 4]
    fg = np.where(best >= c.FG_THRESH)[0]
    fg_count = int(min(fg_per_image, fg.size))
    if fg.size > 0:
        fg = random.choice(fg, size=fg_count, replace=False)
    bg = np.where((best < c.BG_THRESH_HI) & (best >= c.BG_THRESH_LO))[0]
    bg_count = min(per_image - fg_count, bg.size)
    if bg.size > 0:
        bg = random.choice(bg, size=bg_count, replace=False)
    keep = np.append(fg, bg)
    labels = labels[keep]
    labels[fg_count:] = 0
    chosen = every[keep]
    targets = transform_ref(chosen[:, 1:5], gt[assignment[keep], :4])
    targets = (targets - np.array(c.BBOX_NORMALIZE_MEANS)) / np.array(c.BBOX_NORMALIZE_STDS)
    data = np.hstack((labels[:, np.newaxis], targets)).astype(np.float32, copy=False)
    bbox_targets = np.zeros((len(keep), 4 * classes), dtype=np.float32)
    inside_w = np.zeros(bbox_targets.shape, dtype=np.float32)
    for ind in np.where(data[:, 0] > 0)[0]:
        start = int(4 * data[ind, 0])
        bbox_targets[ind, start:start + 4] = data[ind, 1:]
        inside_w[ind, start:start + 4] = c.BBOX_INSIDE_WEIGHTS
    return [chosen, labels, bbox_targets, inside_w, (inside_w > 0).astype(np.float32)]


def train_net(tmp_path: pathlib.Path, count: int = 6) -> caffe.Net:
    from tests.forks.test_dialects import FIXTURES

    net = caffe.Net(str(FIXTURES / "faster_rcnn_tiny_end2end_train.prototxt"), caffe.TRAIN)
    net.layers[0].set_roidb(shapes.roidb(count, seed=5))
    return net


def layer_named(net: caffe.Net, name: str) -> Any:
    return net.layers[list(net._layer_names).index(name)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_targets_equal_py_faster_rcnns_on_the_same_stream(seed: int, cfg: Any,
                                                          tmp_path: pathlib.Path) -> None:
    cfg.TRAIN.SCALES = (128,)
    cfg.TRAIN.RPN_BATCHSIZE = 64  # so that sampling drops anchors
    cfg.TRAIN.BATCH_SIZE = 32
    net = train_net(tmp_path)
    anchor_layer, target_layer = layer_named(net, "rpn-data"), layer_named(net, "roi-data")
    anchor_layer.random = np.random.RandomState(seed)
    target_layer.random = np.random.RandomState(seed + 10)
    net.forward()
    gt = net.blobs["gt_boxes"].data.copy()
    anchors = boxes.generate_anchors(scales=[2, 4])
    expected = anchor_target_ref(8, 8, gt, net.blobs["im_info"].data[0], anchors, np.random.RandomState(seed),
                                 cfg.TRAIN)
    for name, value in zip(("rpn_labels", "rpn_bbox_targets", "rpn_bbox_inside_weights",
                            "rpn_bbox_outside_weights"), expected):
        np.testing.assert_allclose(net.blobs[name].data, value, rtol=0, atol=1e-6, err_msg=name)
    expected = proposal_target_ref(net.blobs["rpn_rois"].data.copy(), gt, 4, np.random.RandomState(seed + 10),
                                   cfg.TRAIN)
    for name, value in zip(("rois", "labels", "bbox_targets", "bbox_inside_weights", "bbox_outside_weights"),
                           expected):
        np.testing.assert_allclose(net.blobs[name].data, value, rtol=0, atol=2e-5, err_msg=name)


def test_data_layer_reads_flips_and_scales_images(cfg: Any, tmp_path: pathlib.Path) -> None:
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless (the forks extra) is not installed")
    entry = shapes.roidb(1, seed=3)[0]
    path = tmp_path / "image.png"
    cv2.imwrite(str(path), entry["image"])
    flipped = dict(entry, image=str(path), flipped=True)
    net = train_net(tmp_path)
    cfg.TRAIN.SCALES = (96,)
    net.layers[0].set_roidb([flipped])
    net.forward()
    expected = cv2.resize(entry["image"][:, ::-1].astype(np.float32) - cfg.PIXEL_MEANS.astype(np.float32),
                          None, None, fx=0.75, fy=0.75, interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(net.blobs["data"].data[0], expected.transpose(2, 0, 1))
    np.testing.assert_array_equal(net.blobs["im_info"].data, [[96, 96, 0.75]])
    np.testing.assert_allclose(net.blobs["gt_boxes"].data[:, :4], entry["boxes"] * 0.75)
    np.testing.assert_array_equal(net.blobs["gt_boxes"].data[:, 4], entry["gt_classes"])
    cfg.TRAIN.SCALES, cfg.TRAIN.MAX_SIZE = (600,), 64  # the long side capped at MAX_SIZE
    net.forward()
    assert net.blobs["data"].data.shape == (1, 3, 64, 64)


def test_data_layer_shuffles_by_aspect_and_repeats(cfg: Any, tmp_path: pathlib.Path) -> None:
    net = train_net(tmp_path, count=7)
    layer = net.layers[0]
    wide = [i % 2 == 0 for i in range(7)]
    sized = [dict(e, width=200 if w else 100, height=100 if w else 200)
             for e, w in zip(shapes.roidb(7), wide)]
    layer.set_roidb(sized)
    order = layer.perm.tolist()
    assert sorted(order) == list(range(7))
    for a, b in zip(order[0:6:2], order[1:6:2]):  # pairs share an orientation
        assert wide[a] == wide[b]


def test_data_layer_errors(cfg: Any, tmp_path: pathlib.Path) -> None:
    from tests.forks.test_dialects import FIXTURES

    net = caffe.Net(str(FIXTURES / "faster_rcnn_tiny_end2end_train.prototxt"), caffe.TRAIN)
    with pytest.raises(ValueError, match=r"'input-data' \(RoIDataLayer\): no images: call net.layers"):
        net.forward()
    with pytest.raises(ValueError, match="entry 0 lacks gt_classes"):
        net.layers[0].set_roidb([{"image": np.zeros((8, 8, 3)), "boxes": np.zeros((1, 4))}])
    cfg.TRAIN.HAS_RPN = False
    with pytest.raises(RuntimeError, match=r"\(HAS_RPN false, BBOX_REG\) mode produces 6 tops, got 3"):
        caffe.Net(str(FIXTURES / "faster_rcnn_tiny_end2end_train.prototxt"), caffe.TRAIN)


def test_anchor_target_uses_py_faster_rcnns_cfg_when_imported(cfg: Any, tmp_path: pathlib.Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    theirs = types.ModuleType("fast_rcnn.config")
    theirs.cfg = config.end2end(config.defaults())  # type: ignore[attr-defined]
    theirs.cfg.TRAIN.SCALES = (128,)  # type: ignore[attr-defined]
    theirs.cfg.TRAIN.RPN_BATCHSIZE = 10  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fast_rcnn.config", theirs)
    assert config.current() is theirs.cfg  # type: ignore[attr-defined]
    net = train_net(tmp_path)
    net.forward()
    assert (net.blobs["rpn_labels"].data >= 0).sum() == 10
    assert torch.is_tensor(torch.from_numpy(net.blobs["rpn_labels"].data))


def test_stand_ins_draw_nothing_from_caffes_stream(cfg: Any, tmp_path: pathlib.Path) -> None:
    """The fillers after the Python layers get Caffe's numbers: the same as with the data layer
    replaced by an Input layer (which draws nothing either)."""
    from recaffe import rng
    from tests.forks.test_dialects import FIXTURES

    text = (FIXTURES / "faster_rcnn_tiny_end2end_train.prototxt").read_text()
    start = text.index("layer {\n  name: 'input-data'")
    end = text.index("layer { name: \"conv1\"")
    data = ('layer { name: "input-data" type: "Input" top: "data" top: "im_info" top: "gt_boxes"\n'
            '  input_param { shape { dim: 1 dim: 3 dim: 128 dim: 128 } shape { dim: 1 dim: 3 }\n'
            '  shape { dim: 1 dim: 5 } } }\n')
    plain = text[:start] + data + text[end:]
    (tmp_path / "plain.prototxt").write_text(plain)
    rng.set_random_seed(11)
    python_net = caffe.Net(str(FIXTURES / "faster_rcnn_tiny_end2end_train.prototxt"), caffe.TRAIN)
    rng.set_random_seed(11)
    input_net = caffe.Net(str(tmp_path / "plain.prototxt"), caffe.TRAIN)
    for name in ("conv1", "rpn_cls_score", "fc6", "bbox_pred"):
        np.testing.assert_array_equal(python_net.params[name][0].data, input_net.params[name][0].data)
    draws = [layer_named(python_net, name).random.randint(1 << 30) for name in ("rpn-data", "roi-data")]
    assert draws[0] != draws[1]  # each layer its own stream
