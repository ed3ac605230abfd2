from __future__ import annotations

import pytest
import torch

from recaffe.testing.layer_case import LayerCase
from tests.layers.neuron.helpers import caffe_input, run_backward, run_forward

# (power, scale, shift): Caffe's test_power_layer combinations, then the golden cases'.
COMBINATIONS = [
    (0.37, 0.83, -2.4), (0.37, 0.83, 0.0), (0.0, 0.83, -2.4), (1.0, 0.83, -2.4), (2.0, 0.34, -2.4),
    (2.0, 0.83, -2.4), (2.0, 0.5, -2.4), (2.0, 0.5, 1.0), (0.5, 2.0, 0.1),
]


def snippet(power: float, scale: float, shift: float) -> str:
    return f"power_param {{ power: {power} scale: {scale} shift: {shift} }}"


def reflect(x: torch.Tensor, scale: float, shift: float) -> torch.Tensor:
    """Mirror inputs below −shift/scale so that shift + scale·x >= 0 (as Caffe's gradient test)."""
    lowest = -shift / scale
    return torch.where(x < lowest, 2 * lowest - x, x)


class TestPower(LayerCase):
    layer_type = "Power"
    params = [
        "", *(snippet(*c) for c in COMBINATIONS), "power_param { power: 2 scale: 1.5 }",
        "power_param { power: -1.5 scale: 1 shift: 3 }", "power_param { power: 3 scale: 0 shift: 2 }",
    ]
    kink, kink_range = 0.0, 0.01
    threshold = 1e-2  # as Caffe's power tests

    def make_bottoms(self, param, generator):
        p = param.power_param
        x = torch.randn((2, 3, 4, 5), generator=generator, dtype=torch.float64)
        fractional = p.power != int(p.power)
        return [reflect(x, p.scale, p.shift) if fractional or p.power < 0 else x]

    def reference(self, bottoms, blobs, param):
        p = param.power_param
        x = bottoms[0]
        if p.power * p.scale == 0:
            return (torch.full_like(x, 1.0 if p.power == 0 else p.shift**p.power) + 0 * x,)
        return (torch.pow(p.shift + p.scale * x, p.power),)


@pytest.mark.parametrize("power, scale, shift", COMBINATIONS)
def test_values_including_nans_of_negative_bases(power: float, scale: float, shift: float) -> None:
    x = caffe_input()
    _, _, top = run_forward("Power", snippet(power, scale, shift), x)
    want = torch.pow(shift + scale * x.double(), power)
    if power in (0.0, 1.0, 2.0):
        assert not bool(top.data.isnan().any())
    assert torch.equal(top.data.isnan(), want.isnan())
    finite = ~want.isnan()
    got = top.data.double()[finite]
    assert bool(((got - want[finite]).abs() <= (want[finite].abs() * 1e-4).clamp(min=1e-5)).all())


@pytest.mark.parametrize("text, value", [
    ("power_param { power: 0 scale: 0.83 shift: -2.4 }", 1.0),
    ("power_param { power: 3 scale: 0 shift: 2 }", 8.0),
    ("power_param { power: -1 scale: 0 shift: 0 }", float("inf")),
])
def test_power_times_scale_zero_ignores_the_input_and_the_top_diff(text: str, value: float) -> None:
    layer, bottom, top = run_forward("Power", text, torch.tensor([-3.0, 0.0, float("nan")]))
    assert top.data.tolist() == [value] * 3
    dx = run_backward(layer, bottom, top, torch.tensor([1.0, float("nan"), float("inf")]))
    assert dx.tolist() == [0.0, 0.0, 0.0]


def test_power_one_gradient_is_scale() -> None:
    layer, bottom, top = run_forward("Power", snippet(1, 0.5, 3), torch.tensor([-3.0, 0.0, 2.0]))
    assert top.data.tolist() == [1.5, 3.0, 4.0]
    assert run_backward(layer, bottom, top, torch.tensor([1.0, 2.0, 4.0])).tolist() == [0.5, 1.0, 2.0]


def test_shift_zero_gradient_is_power_times_y_over_x() -> None:
    layer, bottom, top = run_forward("Power", snippet(3, 2, 0), torch.tensor([1.0, 0.0, -1.0]))
    assert top.data.tolist() == [8.0, 0.0, -8.0]
    dx = run_backward(layer, bottom, top, torch.ones(3))
    assert dx[0] == 24 and dx[2] == 24 and bool(dx[1].isnan())  # 0/0 at x = 0, as Caffe
