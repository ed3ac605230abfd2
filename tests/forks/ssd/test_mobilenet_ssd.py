"""The published MobileNet-SSD deploy net (chuanqi305/MobileNet-SSD, in tests/fixtures/forks) builds in
the SSD dialect and, with seeded weights, equals OpenCV dnn: box predictions, scores, priors and the
DetectionOutput rows."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch

import recaffe
from recaffe import forks
from recaffe.io import prototxt
from tests.forks.test_dialects import FIXTURES

PATH = FIXTURES / "MobileNetSSD_deploy.prototxt"
pytestmark = pytest.mark.slow  # a 300×300 MobileNet with Caffe's fillers: seconds to build and run


@pytest.fixture(scope="module")
def seeded_net() -> recaffe.Net:
    recaffe.set_random_seed(1)
    net = recaffe.Net(str(PATH), recaffe.TEST)
    generator = torch.Generator().manual_seed(1)
    for layer in net.layers:  # BatchNorm statistics and Scale factors a trained net would have
        if layer.type == "BatchNorm":
            layer.blobs[0].data.copy_(torch.randn(layer.blobs[0].shape, generator=generator) * 0.1)
            layer.blobs[1].data.copy_(torch.rand(layer.blobs[1].shape, generator=generator) + 0.5)
            layer.blobs[2].data.fill_(1)
        elif layer.type == "Scale":
            layer.blobs[0].data.copy_(torch.rand(layer.blobs[0].shape, generator=generator) + 0.5)
    return net


def test_mobilenet_ssd_builds_in_the_ssd_dialect(seeded_net: recaffe.Net) -> None:
    net = seeded_net
    assert {layer.type for layer in net.layers} >= {"Permute", "PriorBox", "DetectionOutput", "BatchNorm"}
    assert forks.layer_dialect(prototxt.read_net_param(PATH).layer[-1]) == "ssd"
    assert net.blobs["mbox_priorbox"].shape == (1, 2, 7668)


def test_mobilenet_ssd_equals_opencv_dnn(seeded_net: recaffe.Net, tmp_path: pathlib.Path) -> None:
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless (the forks extra) is not installed")
    net = seeded_net
    weights = tmp_path / "mobilenet_ssd.caffemodel"
    prototxt.write_binary(weights, forks.get_dialect("ssd").raise_net(net.to_proto()))
    x = np.random.default_rng(0).random((1, 3, 300, 300), dtype=np.float32) * 2 - 1
    net.blobs["data"].data.copy_(torch.from_numpy(x))
    net.forward()
    theirs = cv2.dnn.readNetFromCaffe(str(PATH), str(weights))
    theirs.setInput(x)
    names = ["mbox_loc", "mbox_conf_flatten", "mbox_priorbox", "detection_out"]
    outputs = dict(zip(names, theirs.forward(names)))
    for name in names[:-1]:
        mine = net.blobs[name].data.numpy()
        scale = max(1.0, float(np.abs(mine).max()))
        theirs_blob = outputs[name].reshape(mine.shape)
        np.testing.assert_allclose(theirs_blob, mine, rtol=0, atol=1e-4 * scale, err_msg=name)
    mine = net.blobs["detection_out"].data.numpy().reshape(-1, 7)
    cv_rows = outputs["detection_out"].reshape(-1, 7)
    assert len(mine) == len(cv_rows) == 100  # keep_top_k
    order = lambda rows: rows[np.lexsort((-rows[:, 2], rows[:, 1], rows[:, 0]))]  # noqa: E731
    np.testing.assert_allclose(order(cv_rows), order(mine), rtol=0, atol=1e-4)
