from __future__ import annotations

import numpy as np
import pytest
import torch

import recaffe
from recaffe import rng
from recaffe.io import prototxt
from recaffe.layer import LayerError
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_case import LayerCase
from tests.layers.neuron.helpers import caffe_input, run_backward, run_forward


class TestDropout(LayerCase):
    layer_type = "Dropout"
    params = [
        "", "dropout_param { dropout_ratio: 0.3 }", "dropout_param { dropout_ratio: 0.75 }",
        "dropout_param { dropout_ratio: 0 }", "phase: TEST",
        "phase: TEST dropout_param { dropout_ratio: 0.3 }",
    ]
    in_place = True

    def reference(self, bottoms, blobs, param):
        x = bottoms[0]
        if param.phase != caffe_pb2.TRAIN:
            return (x.clone(),)
        return (x * self.layer.mask.double() * self.layer.scale,)


@pytest.mark.parametrize("ratio", [0.5, 0.75])
def test_kept_values_are_scaled_and_the_drop_rate_is_right(ratio: float) -> None:
    x = caffe_input()
    text = "" if ratio == 0.5 else f"dropout_param {{ dropout_ratio: {ratio} }}"  # 0.5: the default
    _, _, top = run_forward("Dropout", text, x)
    kept = top.data != 0
    scale = np.float32(1 / (1 - ratio))
    assert torch.equal(top.data[kept], x[kept] * float(scale))
    std_error = (ratio * (1 - ratio) / x.numel()) ** 0.5
    assert abs((1 - kept.float().mean()) - ratio) <= 1.96 * std_error


def test_mask_is_the_double_bernoulli_of_caffes_stream() -> None:
    x = torch.ones(2, 3, 4, 5)
    layer, _, top = run_forward("Dropout", "dropout_param { dropout_ratio: 0.3 }", x)
    words = rng.CaffeRNG(1701).take(x.numel())
    keep = torch.from_numpy(words.astype(np.int64) <= 3006477055).view(x.shape)  # p = 1 − f32(0.3)
    assert torch.equal(layer.mask.bool(), keep)
    assert torch.equal(top.data, keep.float() * np.float32(1.4285715))


def test_every_train_forward_draws_one_word_per_element() -> None:
    x = caffe_input()
    layer, bottom, top = run_forward("Dropout", "", x)
    first = layer.mask.clone()
    layer.run_forward([bottom], [top])
    assert not torch.equal(first, layer.mask)
    stream = rng.CaffeRNG(1701)
    stream.advance(2 * x.numel())
    assert rng.get_rng().rand() == stream.rand()


def test_test_phase_copies_and_draws_nothing() -> None:
    x = caffe_input()
    layer, bottom, top = run_forward("Dropout", "phase: TEST dropout_param { dropout_ratio: 0.9 }", x)
    assert torch.equal(top.data, x)
    assert rng.get_rng().rand() == rng.CaffeRNG(1701).rand()
    dy = caffe_input(std=2.0).flip(0)
    assert torch.equal(run_backward(layer, bottom, top, dy), dy)


def test_train_backward_reuses_the_mask_and_scale() -> None:
    x, dy = caffe_input(), caffe_input(std=3.0).flip(0)
    layer, bottom, top = run_forward("Dropout", "dropout_param { dropout_ratio: 0.3 }", x)
    dx = run_backward(layer, bottom, top, dy)
    scale = np.float32(1 / (1 - np.float64(np.float32(0.3))))  # Caffe's float scale_
    want = torch.from_numpy(dy.numpy() * layer.mask.numpy() * scale)  # f32(f32(dy · mask) · scale)
    assert torch.equal(dx, want)


def test_ratio_zero_keeps_everything_but_still_draws() -> None:
    x = caffe_input()
    _, _, top = run_forward("Dropout", "dropout_param { dropout_ratio: 0 }", x)
    assert torch.equal(top.data, x)
    stream = rng.CaffeRNG(1701)
    stream.advance(x.numel())
    assert rng.get_rng().rand() == stream.rand()


@pytest.mark.parametrize("ratio", [1.0, 1.5, -0.1])
def test_ratio_must_be_in_zero_one(ratio: float) -> None:
    with pytest.raises(LayerError, match=r"dropout_ratio must be in \[0, 1\)"):
        run_forward("Dropout", f"dropout_param {{ dropout_ratio: {ratio} }}", torch.ones(3))


def test_the_layers_own_phase_wins_over_the_nets() -> None:
    text = """
        layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 10 } } }
        layer { name: "drop" type: "Dropout" bottom: "x" top: "y" phase: TEST }
    """
    net = recaffe.Net(prototxt.parse_text(text, caffe_pb2.NetParameter()), recaffe.TRAIN)
    net.blobs["x"].data.copy_(torch.arange(10.0))
    net.forward()
    assert torch.equal(net.blobs["y"].data, torch.arange(10.0))
