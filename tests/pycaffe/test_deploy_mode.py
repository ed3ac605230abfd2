"""pycaffe in deploy mode: caffe.Net(..., optimize=True), Classifier/Detector(optimize=True)."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import caffe
from tests.test_deploy import FUSIONS, seeded

SOFTMAX_NET = """
name: "small"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 4 dim: 3 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 bias_term: false } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "scale" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip" inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


@pytest.fixture
def fusions(tmp_path: pathlib.Path) -> tuple[str, str]:
    weights = str(tmp_path / "fusions.caffemodel")
    net = caffe.Net(str(FUSIONS), caffe.TEST)
    seeded(net._net)
    net.save(weights)
    return str(FUSIONS), weights


def test_forward_keeps_the_blobs_asked_for(fusions: tuple[str, str]) -> None:
    plain = caffe.Net(*fusions, caffe.TEST)
    fused = caffe.Net(*fusions, caffe.TEST, optimize=True)
    x = np.random.default_rng(0).standard_normal(plain.blobs["data"].data.shape).astype(np.float32)
    want = plain.forward(blobs=["bn2", "conv1"], data=x)
    got = fused.forward(blobs=["bn2", "conv1"], data=x)
    assert set(got) == {"prob", "bn2", "conv1"}
    for name in got:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)
    batches = np.concatenate([x, x[::-1], x[:1]])
    all_plain, all_fused = plain.forward_all(blobs=["sum"], data=batches), fused.forward_all(
        blobs=["sum"], data=batches)
    for name in ("prob", "sum"):
        np.testing.assert_allclose(all_fused[name], all_plain[name], rtol=1e-5, atol=1e-6)


def test_classifier_and_detector_opt_in(write_net, tmp_path: pathlib.Path) -> None:
    path = write_net(SOFTMAX_NET)
    net = caffe.Net(path, caffe.TEST)
    seeded(net._net)
    weights = str(tmp_path / "small.caffemodel")
    net.save(weights)
    images = [np.random.default_rng(i).uniform(size=(8, 9, 3)).astype(np.float32) for i in range(3)]
    plain = caffe.Classifier(path, weights, image_dims=(8, 8), raw_scale=255.0)
    fused = caffe.Classifier(path, weights, image_dims=(8, 8), raw_scale=255.0, optimize=True)
    assert fused._net.deploy is not None and plain._net.deploy is None
    np.testing.assert_allclose(fused.predict(images), plain.predict(images), rtol=1e-5, atol=1e-7)
    assert caffe.Detector(path, weights, optimize=True)._net.deploy is not None
