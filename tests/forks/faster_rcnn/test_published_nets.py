"""py-faster-rcnn's published test nets (tests/fixtures/forks: Faster R-CNN ZF and VGG16 end-to-end,
Fast R-CNN ZF and VGG16) build in the faster_rcnn dialect and, with seeded weights, equal OpenCV dnn.

The nets keep their structure (every layer, kernel, stride, pad, pooled size, anchor and class
count); the widths of the backbone and fc layers are divided by 8 so the tests stay fast, except
in one run of ZF at full width (slow). OpenCV
cannot run a Python layer, so its copy of a Faster R-CNN net has the RPN proposal layer as
OpenCV's own ``Proposal`` type (what OpenCV's Faster R-CNN sample does); recaffe runs that copy
too, and the published one (Python ``rpn.proposal_layer``, resolved to recaffe's stand-in).
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch
from google.protobuf import text_format

import recaffe
from recaffe import forks
from recaffe.forks.faster_rcnn import caffe_faster_rcnn_pb2
from recaffe.io import prototxt
from recaffe.proto import caffe_pb2
from tests.forks.test_dialects import FIXTURES

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless (the forks extra) is not installed")

KEEP_WIDTH = {"rpn_cls_score", "rpn_bbox_pred", "cls_score", "bbox_pred"}  # anchors and classes
NARROW = 8


def narrowed(path: pathlib.Path, opencv: bool, narrow: int = NARROW) -> caffe_faster_rcnn_pb2.NetParameter:
    """The net with its widths divided by ``narrow``; ``opencv``: the RPN proposal layer as
    OpenCV's Proposal type with py-faster-rcnn's test settings."""
    net = caffe_faster_rcnn_pb2.NetParameter()
    text_format.Merge(path.read_text(), net)
    for layer in net.layer:
        if layer.name in KEEP_WIDTH:
            continue
        if layer.type == "Convolution":
            layer.convolution_param.num_output //= narrow
        elif layer.type == "InnerProduct":
            layer.inner_product_param.num_output //= narrow
        elif layer.type == "Python" and opencv:
            assert layer.python_param.module == "rpn.proposal_layer"
            layer.type = "Proposal"
            layer.ClearField("python_param")
            p = layer.proposal_param
            p.feat_stride, p.base_size, p.min_size = 16, 16, 16
            p.ratio.extend([0.5, 1, 2])
            p.scale.extend([8, 16, 32])
            p.pre_nms_topn, p.post_nms_topn, p.nms_thresh = 6000, 300, 0.7
    return net


def seeded(net: recaffe.Net, seed: int) -> None:
    """He-scaled Gaussian weights and small biases (the test prototxts have no fillers); the RPN's
    box deltas small, as a trained RPN's, so proposals spread over the image."""
    generator = torch.Generator().manual_seed(seed)
    for layer in net.layers:
        if layer.blobs:
            weight = layer.blobs[0]
            fan_in = weight.count() // weight.shape[0]
            gain = 0.1 if layer.name == "rpn_bbox_pred" else 1.0
            weight.data.copy_(torch.randn(weight.shape, generator=generator) * gain * (2.0 / fan_in) ** 0.5)
            if len(layer.blobs) > 1:
                layer.blobs[1].data.copy_(torch.randn(layer.blobs[1].shape, generator=generator) * 0.1)


def build(param: caffe_faster_rcnn_pb2.NetParameter, tmp_path: pathlib.Path, name: str,
          seed: int) -> tuple[recaffe.Net, pathlib.Path, pathlib.Path]:
    """recaffe's net from ``param`` (seeded), its prototxt and caffemodel for OpenCV."""
    model = tmp_path / f"{name}.prototxt"
    model.write_text(text_format.MessageToString(param))
    recaffe.set_random_seed(seed)
    net = recaffe.Net(str(model), recaffe.TEST)
    seeded(net, seed)
    weights = tmp_path / f"{name}.caffemodel"
    learned = caffe_pb2.NetParameter()  # names and blobs: all OpenCV reads from a caffemodel
    for layer in net.to_proto().layer:
        if layer.blobs:
            learned.layer.add(name=layer.name, type=layer.type).blobs.extend(layer.blobs)
    prototxt.write_binary(weights, learned)
    return net, model, weights


def close(theirs: np.ndarray, mine: np.ndarray, name: str) -> float:
    scale = max(1.0, float(np.abs(mine).max()))
    np.testing.assert_allclose(theirs.reshape(mine.shape), mine, rtol=0, atol=1e-4 * scale, err_msg=name)
    return float(np.abs(theirs.reshape(mine.shape) - mine).max())


@pytest.mark.parametrize("arch, size, narrow", [
    ("ZF", (320, 448), NARROW), ("VGG16", (224, 320), NARROW),
    pytest.param("ZF", (224, 224), 1, marks=pytest.mark.slow, id="ZF-full-width")])
def test_faster_rcnn_test_net_equals_opencv_dnn(arch: str, size: tuple[int, int], narrow: int,
                                                tmp_path: pathlib.Path) -> None:
    path = FIXTURES / f"faster_rcnn_{arch}_test.prototxt"
    net, model, weights = build(narrowed(path, opencv=True, narrow=narrow), tmp_path, arch, seed=7)
    carried = {layer.name: forks.layer_dialect(layer) for layer in prototxt.read_net_param(model).layer}
    assert carried["proposal"] == carried["roi_pool_conv5" if arch == "ZF" else "roi_pool5"] == "faster_rcnn"
    height, width = size
    x = np.random.default_rng(1).standard_normal((1, 3, height, width)).astype(np.float32)
    im_info = np.array([[height, width, 1.0]], dtype=np.float32)
    net.blobs["data"].reshape(1, 3, height, width)
    net.blobs["data"].data.copy_(torch.from_numpy(x))
    net.blobs["im_info"].data.copy_(torch.from_numpy(im_info))
    net.forward()
    theirs = cv2.dnn.readNetFromCaffe(str(model), str(weights))
    theirs.setInput(x, "data")
    theirs.setInput(im_info, "im_info")
    names = ["rpn_cls_prob_reshape", "rpn_bbox_pred", "proposal", "cls_prob", "bbox_pred"]
    outputs = dict(zip(names, theirs.forward(names)))
    close(outputs["rpn_cls_prob_reshape"], net.blobs["rpn_cls_prob_reshape"].data.numpy(), "rpn scores")
    close(outputs["rpn_bbox_pred"], net.blobs["rpn_bbox_pred"].data.numpy(), "rpn deltas")
    rois = net.blobs["rois"].data.numpy()
    count = rois.shape[0]
    assert 50 < count <= 300
    close(outputs["proposal"][:count], rois, "rois")
    close(outputs["cls_prob"][:count], net.blobs["cls_prob"].data.numpy(), "cls_prob")
    close(outputs["bbox_pred"][:count], net.blobs["bbox_pred"].data.numpy(), "bbox_pred")


@pytest.mark.parametrize("arch", ["ZF", "VGG16"])
def test_fast_rcnn_test_net_equals_opencv_dnn(arch: str, tmp_path: pathlib.Path) -> None:
    path = FIXTURES / f"fast_rcnn_{arch}_test.prototxt"
    net, model, weights = build(narrowed(path, opencv=False), tmp_path, f"fast_{arch}", seed=3)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 3, 192, 224)).astype(np.float32)
    corners = np.sort(rng.uniform(0, 190, size=(40, 2, 2)), axis=1)  # (x1, x2), (y1, y2) in order
    rois = np.concatenate([np.zeros((40, 1)), corners[:, 0, :1], corners[:, 0, 1:], corners[:, 1, :1],
                           corners[:, 1, 1:]], axis=1)[:, [0, 1, 3, 2, 4]].astype(np.float32)
    net.blobs["data"].reshape(*x.shape)
    net.blobs["data"].data.copy_(torch.from_numpy(x))
    net.blobs["rois"].reshape(*rois.shape)
    net.blobs["rois"].data.copy_(torch.from_numpy(rois))
    net.forward()
    theirs = cv2.dnn.readNetFromCaffe(str(model), str(weights))
    theirs.setInput(x, "data")
    theirs.setInput(rois, "rois")
    names = ["cls_prob", "bbox_pred"]
    for name, blob in zip(names, theirs.forward(names)):
        close(blob, net.blobs[name].data.numpy(), name)


def test_published_faster_rcnn_net_runs_its_python_proposal_layer_built_in(tmp_path: pathlib.Path) -> None:
    """The published prototxt as is: 'rpn.proposal_layer' is not importable here, so recaffe runs
    its stand-in (py-faster-rcnn's flavour: RPN_MIN_SIZE applied, at most 300 rois)."""
    param = narrowed(FIXTURES / "faster_rcnn_ZF_test.prototxt", opencv=False)
    net, _, _ = build(param, tmp_path, "py", seed=7)
    assert type(net.layers[[layer.name for layer in net.layers].index("proposal")].user).__module__ \
        == "recaffe.forks.faster_rcnn.rpn"
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
    net.blobs["data"].data.copy_(torch.from_numpy(x))
    net.blobs["im_info"].data.copy_(torch.tensor([[224.0, 224.0, 1.0]]))
    net.forward()
    rois = net.blobs["rois"].data
    assert 0 < rois.shape[0] <= 300 and bool((rois[:, 0] == 0).all())
    sizes = rois[:, 3:5] - rois[:, 1:3] + 1
    assert float(sizes.min()) >= 16 and float(rois[:, 1:].max()) <= 223
    assert net.blobs["cls_prob"].shape == (rois.shape[0], 21)


def test_faster_rcnn_test_net_in_deploy_mode(tmp_path: pathlib.Path) -> None:
    """optimize=True gives the plain net's outputs, though the number of rois (the batch of the
    fc layers) is known only when the proposal layer has run."""
    param = narrowed(FIXTURES / "faster_rcnn_ZF_test.prototxt", opencv=True)
    plain, model, weights = build(param, tmp_path, "deploy", seed=7)
    fast = recaffe.Net(str(model), recaffe.TEST, weights_file=str(weights), optimize=True)
    for size in ((160, 192), (224, 288)):  # a second pass with another roi count
        x = np.random.default_rng(size[1]).standard_normal((1, 3, *size)).astype(np.float32)
        for net in (plain, fast):
            net.blobs["data"].reshape(*x.shape)
            net.blobs["data"].data.copy_(torch.from_numpy(x))
            net.blobs["im_info"].data.copy_(torch.tensor([[size[0], size[1], 1.0]]))
            net.forward()
        assert fast.blobs["cls_prob"].shape == (plain.blobs["rois"].shape[0], 21)
        for name in ("cls_prob", "bbox_pred"):  # the outputs (deploy mode frees the rest)
            mine = plain.blobs[name].data.numpy()
            np.testing.assert_allclose(fast.blobs[name].data.numpy(), mine, rtol=0,
                                       atol=1e-5 * max(1.0, float(np.abs(mine).max())), err_msg=name)
