from __future__ import annotations

import math

import torch

from recaffe.testing.layer_case import LayerCase
from tests.layers.neuron.helpers import caffe_input, run_forward


class TestTanH(LayerCase):
    layer_type = "TanH"
    params = [""]
    in_place = True

    def reference(self, bottoms, blobs, param):
        return (torch.tanh(bottoms[0]),)


def naive_tanh(x: float) -> float:
    """(e^2x − 1)/(e^2x + 1), guarded against overflow like Caffe's test."""
    if x < -40:
        return -1.0
    if x > 40:
        return 1.0
    e = math.exp(2 * x)
    return (e - 1) / (e + 1)


def test_values_and_no_overflow_for_huge_inputs() -> None:
    for std in (1.0, 10000.0):  # Caffe's TestTanH and TestTanHOverflow
        x = caffe_input(std=std)
        _, _, top = run_forward("TanH", "", x)
        for value, got in zip(x.view(-1).tolist(), top.data.view(-1).tolist()):
            want = naive_tanh(value)
            assert abs(got - want) <= max(abs(want) * 1e-4, 1e-5), (value, got, want)
