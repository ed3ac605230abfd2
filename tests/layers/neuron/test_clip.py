from __future__ import annotations

import pytest
import torch

from recaffe.layer import LayerError
from recaffe.testing.layer_case import LayerCase
from tests.layers.neuron.helpers import caffe_input, run_backward, run_forward


class TestClip(LayerCase):
    layer_type = "Clip"
    params = ["clip_param { min: -1 max: 2 }", "clip_param { min: -0.5 max: 0.5 }",
              "clip_param { min: 0.3 max: 0.3 }"]

    def make_bottoms(self, param, generator):
        """Standard normal, nudged 0.01 away from min and max (Caffe's TestClipGradient)."""
        p, eps = param.clip_param, 1e-2
        x = torch.randn((2, 3, 4, 5), generator=generator, dtype=torch.float64)
        x = torch.where((x - p.min).abs() <= eps, x - eps, x)
        return [torch.where((x - p.max).abs() <= eps, x + eps, x)]

    def reference(self, bottoms, blobs, param):
        return (torch.clamp(bottoms[0], param.clip_param.min, param.clip_param.max),)


def test_values_stay_in_range_and_equal_the_input_inside() -> None:
    x = caffe_input()
    _, _, top = run_forward("Clip", "clip_param { min: -1 max: 2 }", x)
    y = top.data
    assert bool(((y >= -1) & (y <= 2)).all())
    inside = (x >= -1) & (x <= 2)
    assert torch.equal(y[inside], x[inside])
    assert bool((y[x < -1] == -1).all()) and bool((y[x > 2] == 2).all())


def test_gradient_passes_on_the_closed_interval_only() -> None:
    x = torch.tensor([-2.0, -1.0, 0.0, 2.0, 3.0])
    layer, bottom, top = run_forward("Clip", "clip_param { min: -1 max: 2 }", x)
    dx = run_backward(layer, bottom, top, torch.tensor([-1.0, 1.0, 1.0, 1.0, 1.0]))
    assert dx.tolist() == [-0.0, 1.0, 1.0, 1.0, 0.0]
    assert dx[0].signbit()  # dy · 0 keeps the sign, as Caffe's product does


def test_nan_and_crossed_bounds_follow_caffe_cpu() -> None:
    _, _, top = run_forward("Clip", "clip_param { min: -1 max: 2 }", torch.tensor([float("nan")]))
    assert top.data.tolist() == [-1.0]  # max(min, min(NaN, max)) with std::min/std::max
    _, _, top = run_forward("Clip", "clip_param { min: 3 max: 1 }", torch.tensor([0.0, 2.0, 5.0]))
    assert top.data.tolist() == [3.0, 3.0, 3.0]


@pytest.mark.parametrize("text, missing", [("clip_param { min: 0 }", "max"), ("", "min and max")])
def test_min_and_max_are_required(text: str, missing: str) -> None:
    with pytest.raises(LayerError, match=f"clip_param.{missing} must be given"):
        run_forward("Clip", text, torch.zeros(3))
