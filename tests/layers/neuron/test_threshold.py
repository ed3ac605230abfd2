from __future__ import annotations

import numpy as np
import pytest
import torch

from recaffe.layer import LayerError
from recaffe.testing.layer_case import LayerCase
from tests.layers.neuron.helpers import caffe_input, run_forward


class TestThreshold(LayerCase):
    layer_type = "Threshold"
    params = ["", "threshold_param { threshold: 0.2 }", "threshold_param { threshold: -1.5 }"]
    has_backward = False

    def reference(self, bottoms, blobs, param):
        return ((bottoms[0] > param.threshold_param.threshold).double(),)


def test_values_are_one_strictly_above_the_threshold() -> None:
    just_above = float(np.nextafter(np.float32(0.2), np.float32(1)))
    x = torch.tensor([-1.0, 0.2, just_above, 0.5, float("nan")])
    _, _, top = run_forward("Threshold", "threshold_param { threshold: 0.2 }", x)
    assert top.data.tolist() == [0.0, 0.0, 1.0, 1.0, 0.0]


def test_in_place_forward_is_exact() -> None:
    x = caffe_input()
    _, _, top = run_forward("Threshold", "threshold_param { threshold: 0.3 }", x, in_place=True)
    assert torch.equal(top.data, (x > 0.3).float())


def test_backward_is_not_implemented() -> None:
    layer, bottom, top = run_forward("Threshold", "", caffe_input())
    layer.run_backward([top], [False], [bottom])  # nothing asked, nothing to do
    with pytest.raises(LayerError, match="cannot propagate gradients"):
        layer.run_backward([top], [True], [bottom])
