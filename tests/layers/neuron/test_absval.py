from __future__ import annotations

import torch

from recaffe.testing.layer_case import LayerCase
from tests.layers.neuron.helpers import caffe_input, run_backward, run_forward


class TestAbsVal(LayerCase):
    layer_type = "AbsVal"
    params = [""]
    kink, kink_range = 0.0, 0.01

    def reference(self, bottoms, blobs, param):
        return (bottoms[0].abs(),)


def test_values_are_exact() -> None:
    x = caffe_input()
    _, _, top = run_forward("AbsVal", "", x)
    assert torch.equal(top.data, x.abs())


def test_gradient_at_zero_is_zero() -> None:
    layer, bottom, top = run_forward("AbsVal", "", torch.tensor([-2.0, 0.0, 3.0]))
    dx = run_backward(layer, bottom, top, torch.tensor([5.0, 5.0, 5.0]))
    assert dx.tolist() == [-5.0, 0.0, 5.0]
