from __future__ import annotations

import torch

from recaffe.testing.layer_case import LayerCase
from tests.layers.neuron.helpers import caffe_input, run_forward, ulp_distance


class TestSigmoid(LayerCase):
    layer_type = "Sigmoid"
    params = [""]
    in_place = True

    def reference(self, bottoms, blobs, param):
        return (torch.sigmoid(bottoms[0]),)


def test_values_are_the_logistic_function_in_zero_one() -> None:
    x = caffe_input()
    _, _, top = run_forward("Sigmoid", "", x)
    y = top.data
    assert ulp_distance(y, 1 / (1 + torch.exp(-x.double()))) <= 4  # Caffe's EXPECT_FLOAT_EQ
    assert bool(((y >= 0) & (y <= 1)).all())


def test_extreme_inputs_saturate_without_overflow() -> None:
    x = torch.tensor([-1e4, -200.0, 0.0, 100.0, 1e4])
    _, _, top = run_forward("Sigmoid", "", x)
    assert top.data.tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]


def test_matches_caffes_double_tanh_form_within_two_ulps() -> None:
    x = torch.linspace(-15, 15, 30001)
    _, _, top = run_forward("Sigmoid", "", x)
    assert ulp_distance(top.data, 0.5 * torch.tanh(0.5 * x.double()) + 0.5) <= 2
