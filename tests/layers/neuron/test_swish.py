from __future__ import annotations

import pytest
import torch

from recaffe.testing.layer_case import LayerCase
from tests.layers.neuron.helpers import caffe_input, run_forward, ulp_distance


class TestSwish(LayerCase):
    layer_type = "Swish"
    params = ["", "swish_param { beta: 1.5 }", "swish_param { beta: 0 }", "swish_param { beta: -0.7 }"]
    in_place = True

    def reference(self, bottoms, blobs, param):
        x = bottoms[0]
        return (x * torch.sigmoid(param.swish_param.beta * x),)


@pytest.mark.parametrize("beta", [1.0, 1.5, 0.0])
def test_values_are_x_times_sigmoid_of_beta_x(beta: float) -> None:
    x = caffe_input()
    _, _, top = run_forward("Swish", f"swish_param {{ beta: {beta} }}", x)
    want = x.double() / (1 + torch.exp(-beta * x.double()))
    assert ulp_distance(top.data, want) <= 4  # Caffe's EXPECT_FLOAT_EQ


def test_beta_zero_halves_the_input_exactly() -> None:
    x = caffe_input()
    _, _, top = run_forward("Swish", "swish_param { beta: 0 }", x)
    assert torch.equal(top.data, x / 2)
