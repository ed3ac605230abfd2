from __future__ import annotations

import torch

from recaffe.testing.layer_case import LayerCase
from tests.layers.neuron.helpers import caffe_input, run_backward, run_forward


class TestELU(LayerCase):
    layer_type = "ELU"
    params = ["", "elu_param { alpha: 0.5 }", "elu_param { alpha: 0 }"]
    kink, kink_range = 0.0, 0.01
    in_place = True

    def reference(self, bottoms, blobs, param):
        return (torch.nn.functional.elu(bottoms[0], alpha=param.elu_param.alpha),)


def test_values_with_alpha_half() -> None:
    x = caffe_input()
    _, _, top = run_forward("ELU", "elu_param { alpha: 0.5 }", x)
    positive = x > 0
    assert torch.equal(top.data[positive], x[positive])
    torch.testing.assert_close(top.data[~positive], 0.5 * torch.expm1(x[~positive]), rtol=0, atol=2e-4)


def test_alpha_zero_is_relu_forward_and_backward() -> None:
    x = caffe_input()
    dy = caffe_input(std=2.0).flip(0)
    elu, elu_bottom, elu_top = run_forward("ELU", "elu_param { alpha: 0 }", x)
    relu, relu_bottom, relu_top = run_forward("ReLU", "", x)
    assert torch.equal(elu_top.data, relu_top.data)
    elu_dx = run_backward(elu, elu_bottom, elu_top, dy)
    assert torch.equal(elu_dx, run_backward(relu, relu_bottom, relu_top, dy))


def test_gradient_below_zero_is_alpha_plus_output() -> None:
    layer, bottom, top = run_forward("ELU", "elu_param { alpha: 2 }", torch.tensor([-1.0, 0.0, 1.0]))
    dx = run_backward(layer, bottom, top, torch.full((3,), 3.0))
    torch.testing.assert_close(dx, torch.tensor([3 * 2 * torch.e ** -1, 3 * 2.0, 3.0]))
