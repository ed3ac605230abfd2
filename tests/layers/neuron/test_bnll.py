from __future__ import annotations

import torch

from recaffe.testing.layer_case import LayerCase
from tests.layers.neuron.helpers import caffe_input, run_backward, run_forward


class TestBNLL(LayerCase):
    layer_type = "BNLL"
    params = [""]

    def reference(self, bottoms, blobs, param):
        return (torch.nn.functional.softplus(bottoms[0]),)


def test_values_are_positive_and_above_the_input() -> None:
    x = caffe_input()
    _, _, top = run_forward("BNLL", "", x)
    assert bool((top.data >= 0).all()) and bool((top.data >= x).all())


def test_large_inputs_do_not_overflow() -> None:
    x = torch.tensor([-1000.0, -60.0, 60.0, 1000.0])
    layer, bottom, top = run_forward("BNLL", "", x)
    torch.testing.assert_close(top.data, torch.tensor([0.0, 8.7565e-27, 60.0, 1000.0]))
    dx = run_backward(layer, bottom, top, torch.ones(4))
    torch.testing.assert_close(dx, torch.tensor([0.0, 8.7565e-27, 1.0, 1.0]))


def test_in_place_backward_reads_the_overwritten_input_as_caffe() -> None:
    x = caffe_input()
    layer, bottom, top = run_forward("BNLL", "", x, in_place=True)
    y = torch.nn.functional.softplus(x)
    dx = run_backward(layer, bottom, top, torch.ones_like(x))
    torch.testing.assert_close(dx, torch.sigmoid(y))  # σ(y), not σ(x): in place is unsafe
