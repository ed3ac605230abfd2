"""The RPN pieces: anchors, the deterministic NMS against a loop written from py-faster-rcnn's
cpu_nms.pyx, the proposal stand-in against a reference written from lib/rpn/proposal_layer.py,
OpenCV's Proposal layer against OpenCV dnn, and how Python layers resolve to the stand-ins."""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Iterator

import numpy as np
import pytest
import torch

import recaffe
from recaffe.forks import python_layers
from recaffe.forks.faster_rcnn import boxes, config, rpn
from recaffe.layers.utility.python import PythonLayerError


def test_default_anchors_are_py_faster_rcnns() -> None:
    # the 9 anchors listed in py-faster-rcnn's lib/rpn/generate_anchors.py (MATLAB's, 1-based)
    expected = [[-83, -39, 100, 56], [-175, -87, 192, 104], [-359, -183, 376, 200],
                [-55, -55, 72, 72], [-119, -119, 136, 136], [-247, -247, 264, 264],
                [-35, -79, 52, 96], [-79, -167, 96, 184], [-167, -343, 184, 360]]
    np.testing.assert_array_equal(boxes.generate_anchors(), np.array(expected) - 1)
    np.testing.assert_array_equal(boxes.generate_anchors(opencv=True), boxes.generate_anchors())
    # the two roundings differ at exact halves: base 18 at ratio 0.5 is 25 wide, 12.5 high
    assert boxes.generate_anchors(18, [0.5], [1])[0, 3] - boxes.generate_anchors(18, [0.5], [1])[0, 1] == 11
    assert boxes.generate_anchors(18, [0.5], [1], opencv=True)[0, 3] \
        - boxes.generate_anchors(18, [0.5], [1], opencv=True)[0, 1] == 12


def cpu_nms_loop(dets: np.ndarray, thresh: float) -> list[int]:
    """py-faster-rcnn's lib/nms/cpu_nms.pyx, loop for loop (float32), with a stable order."""
    x1, y1, x2, y2, scores = (dets[:, i].astype(np.float32) for i in range(5))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores, kind="stable")[::-1]
    suppressed = np.zeros(len(dets), dtype=bool)
    keep = []
    for a, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(int(i))
        for j in order[a + 1:]:
            if suppressed[j]:
                continue
            w = max(np.float32(0), min(x2[i], x2[j]) - max(x1[i], x1[j]) + np.float32(1))
            h = max(np.float32(0), min(y2[i], y2[j]) - max(y1[i], y1[j]) + np.float32(1))
            inter = np.float32(w * h)
            if float(inter / (areas[i] + areas[j] - inter)) >= thresh:
                suppressed[j] = True
    return keep


def random_dets(rng: np.random.Generator, count: int) -> np.ndarray:
    corners = rng.uniform(0, 200, size=(count, 2))
    sizes = rng.uniform(5, 80, size=(count, 2))
    scores = np.round(rng.random(count), 1)  # many ties
    return np.concatenate([corners, corners + sizes, scores[:, None]], axis=1).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_equals_cpu_nms(seed: int) -> None:
    dets = random_dets(np.random.default_rng(seed), 300)
    dets[10] = dets[11]  # identical boxes: overlap exactly 1
    dets[20, :4] = dets[21, :4]  # same box, other score
    for thresh in (0.3, 0.7, 1.0):
        kept = boxes.nms(torch.from_numpy(dets[:, :4]), torch.from_numpy(dets[:, 4]), thresh).tolist()
        assert kept == cpu_nms_loop(dets, thresh)
        limited = boxes.nms(torch.from_numpy(dets[:, :4]), torch.from_numpy(dets[:, 4]), thresh, limit=7)
        assert limited.tolist() == kept[:7]


def test_nms_suppresses_at_the_threshold_exactly() -> None:
    # boxes 10 px wide overlapping by 5 px: inter 5·10 = 50, union 150, overlap 1/3 in float32
    dets = torch.tensor([[0, 0, 9, 9], [5, 0, 14, 9]], dtype=torch.float32)
    third = float(torch.tensor(50.0) / torch.tensor(150.0))
    assert boxes.nms(dets, torch.tensor([0.9, 0.8]), third).tolist() == [0]
    assert boxes.nms(dets, torch.tensor([0.9, 0.8]), np.nextafter(third, 1)).tolist() == [0, 1]


def proposal_reference(scores: np.ndarray, deltas: np.ndarray, im_info: np.ndarray, stride: int,
                       pre: int, post: int, thresh: float, min_size: float) -> np.ndarray:
    """lib/rpn/proposal_layer.py's forward in numpy (stable sorts for its argsort()[::-1])."""
    anchors = boxes.generate_anchors()
    count = anchors.shape[0]
    height, width = scores.shape[-2:]
    shift_x, shift_y = np.meshgrid(np.arange(width) * stride, np.arange(height) * stride)
    shifts = np.vstack((shift_x.ravel(), shift_y.ravel(), shift_x.ravel(), shift_y.ravel())).transpose()
    every = anchors.reshape((1, count, 4)) + shifts.reshape((1, -1, 4)).transpose((1, 0, 2))
    every = every.reshape((-1, 4))
    d = deltas.transpose((0, 2, 3, 1)).reshape((-1, 4))
    s = scores[:, count:].transpose((0, 2, 3, 1)).reshape((-1, 1))
    b = every.astype(np.float32)
    widths, heights = b[:, 2] - b[:, 0] + 1.0, b[:, 3] - b[:, 1] + 1.0
    cx, cy = b[:, 0] + 0.5 * widths, b[:, 1] + 0.5 * heights
    px, py = d[:, 0] * widths + cx, d[:, 1] * heights + cy
    pw, ph = np.exp(d[:, 2]) * widths, np.exp(d[:, 3]) * heights
    props = np.stack([px - 0.5 * pw, py - 0.5 * ph, px + 0.5 * pw, py + 0.5 * ph], axis=1)
    props[:, 0::2] = np.maximum(np.minimum(props[:, 0::2], im_info[1] - 1), 0)
    props[:, 1::2] = np.maximum(np.minimum(props[:, 1::2], im_info[0] - 1), 0)
    ws, hs = props[:, 2] - props[:, 0] + 1, props[:, 3] - props[:, 1] + 1
    keep = np.where((ws >= min_size * im_info[2]) & (hs >= min_size * im_info[2]))[0]
    props, s = props[keep], s[keep]
    order = np.argsort(s.ravel(), kind="stable")[::-1][:pre]
    props, s = props[order], s[order]
    kept = cpu_nms_loop(np.hstack((props, s)), thresh)[:post]
    return np.hstack((np.zeros((len(kept), 1), dtype=np.float32), props[kept]))


def rpn_outputs(seed: int, ties: bool = True, height: int = 12,
                width: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((1, 2, 9 * height, width)).astype(np.float32)
    probs = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).reshape(1, 18, height, width)
    scores = (np.round(probs, 2) if ties else probs).astype(np.float32)
    deltas = (rng.standard_normal((1, 36, height, width)) * 0.2).astype(np.float32)
    return scores, deltas


PROPOSAL_NET = """
input: "scores" input_shape {{ dim: 1 dim: 18 dim: 12 dim: 16 }}
input: "deltas" input_shape {{ dim: 1 dim: 36 dim: 12 dim: 16 }}
input: "im_info" input_shape {{ dim: 1 dim: 3 }}
layer {{ name: "proposal" type: {kind} bottom: "scores" bottom: "deltas" bottom: "im_info"
  top: "rois" top: "roi_scores" {param} }}
"""
PYTHON = ("python_param { module: 'rpn.proposal_layer' layer: 'ProposalLayer' "
          "param_str: \"'feat_stride': 16\" }")
OPENCV = ("proposal_param { feat_stride: 16 ratio: 0.5 ratio: 1 ratio: 2 scale: 8 scale: 16 scale: 32 "
          "pre_nms_topn: 500 post_nms_topn: 60 nms_thresh: 0.6 }")


def proposal_net(tmp_path: pathlib.Path, kind: str, phase: int = recaffe.TEST) -> recaffe.Net:
    path = tmp_path / f"{kind}.prototxt"
    path.write_text(PROPOSAL_NET.format(kind=f'"{kind}"', param=PYTHON if kind == "Python" else OPENCV))
    return recaffe.Net(str(path), phase)


def run(net: recaffe.Net, scores: np.ndarray, deltas: np.ndarray, im_info: np.ndarray) -> None:
    net.blobs["scores"].data.copy_(torch.from_numpy(scores))
    net.blobs["deltas"].data.copy_(torch.from_numpy(deltas))
    net.blobs["im_info"].data.copy_(torch.from_numpy(im_info))
    net.forward()


@pytest.mark.parametrize("seed", [0, 1])
def test_python_proposal_layer_equals_py_faster_rcnn(seed: int, tmp_path: pathlib.Path) -> None:
    scores, deltas = rpn_outputs(seed)
    im_info = np.array([[180, 250, 1.5]], dtype=np.float32)
    net = proposal_net(tmp_path, "Python")
    run(net, scores, deltas, im_info)
    expected = proposal_reference(scores, deltas, im_info[0], 16, 6000, 300, 0.7, 16)
    np.testing.assert_allclose(net.blobs["rois"].data.numpy(), expected, rtol=0, atol=1e-4)
    assert net.blobs["roi_scores"].shape == (expected.shape[0], 1)
    # the TRAIN section of the config, changed in place
    train = proposal_net(tmp_path, "Python", recaffe.TRAIN)
    saved = config.cfg.TRAIN.RPN_POST_NMS_TOP_N
    config.cfg.TRAIN.RPN_POST_NMS_TOP_N = 5
    try:
        run(train, scores, deltas, im_info)
    finally:
        config.cfg.TRAIN.RPN_POST_NMS_TOP_N = saved
    expected = proposal_reference(scores, deltas, im_info[0], 16, 12000, 5, 0.7, 16)
    np.testing.assert_allclose(train.blobs["rois"].data.numpy(), expected, rtol=0, atol=1e-4)


def test_opencv_proposal_layer_equals_opencv_dnn(tmp_path: pathlib.Path) -> None:
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless (the forks extra) is not installed")
    scores, deltas = rpn_outputs(3, ties=False)  # OpenCV orders equal scores as its std::sort leaves them
    im_info = np.array([[180, 250, 1.0]], dtype=np.float32)
    net = proposal_net(tmp_path, "Proposal")
    run(net, scores, deltas, im_info)
    theirs = cv2.dnn.readNetFromCaffe(str(tmp_path / "Proposal.prototxt"))
    for name, value in (("scores", scores), ("deltas", deltas), ("im_info", im_info)):
        theirs.setInput(value, name)
    rois = net.blobs["rois"].data.numpy()
    assert rois.shape == (60, 5)
    np.testing.assert_allclose(theirs.forward("proposal")[:60], rois, rtol=0, atol=1e-3)


def test_opencv_proposal_layer_checks_its_bottoms(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "bad.prototxt"
    path.write_text(PROPOSAL_NET.format(kind='"Proposal"', param=OPENCV).replace("dim: 18", "dim: 16"))
    with pytest.raises(ValueError, match=r"proposal.*scores \(bottom 0\) must be N×18×H×W for 9 anchors"):
        recaffe.Net(str(path), recaffe.TEST)


# ------------------------------------------------------------ resolving the Python layers
USER_MODULE = """
import caffe

class ProposalLayer(caffe.Layer):
    def setup(self, bottom, top):
        top[0].reshape(1, 5)
        top[1].reshape(1, 1)

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        top[0].data[...] = 7
        top[1].data[...] = 7
"""


@pytest.fixture
def user_rpn(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[pathlib.Path]:
    """A user's own ``rpn.proposal_layer`` on sys.path (forgotten again afterwards)."""
    package = tmp_path / "lib" / "rpn"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "proposal_layer.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    for name in ("rpn", "rpn.proposal_layer"):
        sys.modules.pop(name, None)
    yield package / "proposal_layer.py"
    for name in ("rpn", "rpn.proposal_layer"):
        sys.modules.pop(name, None)


def proposal_module(net: recaffe.Net) -> str:
    return type(net.layers[-1].user).__module__


def test_python_proposal_layer_resolves_to_the_built_in_when_not_importable(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(python_layers.ENV, raising=False)
    assert proposal_module(proposal_net(tmp_path, "Python")) == "recaffe.forks.faster_rcnn.rpn"
    monkeypatch.setenv(python_layers.ENV, "user")
    with pytest.raises(PythonLayerError, match="cannot import python_param.module 'rpn.proposal_layer'"):
        proposal_net(tmp_path, "Python")
    monkeypatch.setenv(python_layers.ENV, "sometimes")
    with pytest.raises(ValueError, match="RECAFFE_PYTHON_LAYERS='sometimes': expected one of auto, builtin"):
        proposal_net(tmp_path, "Python")


def test_python_proposal_layer_prefers_an_importable_user_module(
        user_rpn: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(python_layers.ENV, raising=False)
    net = proposal_net(tmp_path, "Python")
    assert proposal_module(net) == "rpn.proposal_layer"
    run(net, *rpn_outputs(0), np.array([[180, 250, 1.0]], dtype=np.float32))
    assert float(net.blobs["rois"].data[0, 0]) == 7
    monkeypatch.setenv(python_layers.ENV, "builtin")
    assert proposal_module(proposal_net(tmp_path, "Python")) == "recaffe.forks.faster_rcnn.rpn"


def test_python_2_user_module_falls_back_to_the_built_in(
        user_rpn: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user_rpn.write_text(USER_MODULE + "\nprint 'py-faster-rcnn is Python 2'\n")
    monkeypatch.delenv(python_layers.ENV, raising=False)
    assert proposal_module(proposal_net(tmp_path, "Python")) == "recaffe.forks.faster_rcnn.rpn"
    monkeypatch.setenv(python_layers.ENV, "user")
    with pytest.raises(PythonLayerError, match="SyntaxError"):
        proposal_net(tmp_path, "Python")


def test_param_str_errors_name_the_layer(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "p.prototxt"
    no_stride = PYTHON.replace("'feat_stride': 16", "'scales': [8]")
    path.write_text(PROPOSAL_NET.format(kind='"Python"', param=no_stride))
    with pytest.raises(PythonLayerError, match=r"'proposal'.*param_str .* lacks 'feat_stride'"):
        recaffe.Net(str(path), recaffe.TEST)
    path.write_text(PROPOSAL_NET.format(kind='"Python"', param=PYTHON.replace("16", "16, 'scales': 'big'")))
    with pytest.raises(PythonLayerError, match="'scales' must be a list of positive numbers"):
        recaffe.Net(str(path), recaffe.TEST)


def test_ranking_cuts_pre_nms() -> None:
    scores, deltas = rpn_outputs(4)
    info = torch.tensor([[180.0, 250.0, 1.0]])
    ranking = rpn.Ranking(10, 0, 1.5, None, opencv=False)  # overlaps never reach 1.5: no NMS
    found, kept = rpn.proposals(torch.from_numpy(scores), torch.from_numpy(deltas), info,
                                boxes.generate_anchors(), 16, ranking, "test")
    assert found.shape == (10, 4) and bool((kept[:-1] >= kept[1:]).all())


def test_fallback_is_logged_louder_when_the_users_module_is_there_but_fails(
        user_rpn: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv(python_layers.ENV, raising=False)
    user_rpn.write_text("from nms.gpu_nms import gpu_nms\n" + USER_MODULE)  # the Cython extension, not built
    with caplog.at_level("INFO", logger="recaffe.layers.utility.python"):
        assert proposal_module(proposal_net(tmp_path, "Python")) == "recaffe.forks.faster_rcnn.rpn"
    mine = [r for r in caplog.records if r.name == "recaffe.layers.utility.python"]
    assert [r.levelname for r in mine] == ["WARNING"]
    assert "No module named 'nms'" in mine[0].getMessage()
    caplog.clear()
    user_rpn.unlink()
    for name in ("rpn", "rpn.proposal_layer"):
        sys.modules.pop(name, None)
    (user_rpn.parent / "__init__.py").unlink()
    user_rpn.parent.rmdir()
    with caplog.at_level("INFO", logger="recaffe.layers.utility.python"):
        proposal_net(tmp_path, "Python")
    assert [r.levelname for r in caplog.records if r.name == "recaffe.layers.utility.python"] == ["INFO"]
