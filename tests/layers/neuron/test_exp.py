from __future__ import annotations

import math

import pytest
import torch

from recaffe.layer import LayerError
from recaffe.testing.layer_case import LayerCase
from tests.layers.neuron.helpers import caffe_input, run_forward

# (base, scale, shift): Caffe's TestExpLayer* combinations, plus the golden case's.
COMBINATIONS = [(-1, 1, 0), (-1, 1, 1), (2, 1, 0), (2, 1, 1), (2, 3, 0), (2, 3, 1), (-1, 0.5, 0.1)]


def snippet(base: float, scale: float, shift: float) -> str:
    return f"exp_param {{ base: {base} scale: {scale} shift: {shift} }}"


class TestExp(LayerCase):
    layer_type = "Exp"
    params = ["", *(snippet(*c) for c in COMBINATIONS[1:]), "exp_param { base: 0.5 scale: -2 }"]
    in_place = True

    def reference(self, bottoms, blobs, param):
        p = param.exp_param
        base = math.e if p.base == -1 else p.base
        return (torch.pow(base, p.shift + p.scale * bottoms[0]),)


@pytest.mark.parametrize("base, scale, shift", COMBINATIONS)
def test_values_match_the_power_of_the_base(base: float, scale: float, shift: float) -> None:
    x = caffe_input()
    _, _, top = run_forward("Exp", snippet(base, scale, shift), x)
    exponent = shift + scale * x.double()
    want = exponent.exp() if base == -1 else torch.pow(base, exponent)
    torch.testing.assert_close(top.data.double(), want, rtol=1e-6, atol=2e-4)


def test_base_one_gives_a_constant() -> None:
    _, _, top = run_forward("Exp", "exp_param { base: 1 shift: 3 }", torch.tensor([-5.0, 0.0, 7.0]))
    assert top.data.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("base", [0, -2, -0.5, float("nan")])
def test_base_must_be_positive_unless_minus_one(base: float) -> None:
    with pytest.raises(LayerError, match=r"exp_param.base must be > 0 \(or -1 for e\), got"):
        run_forward("Exp", f"exp_param {{ base: {base} }}", torch.ones(3))


def test_overflowing_shift_gives_inf_as_in_c() -> None:
    _, _, top = run_forward("Exp", "exp_param { shift: 100 }", torch.tensor([0.0, -80.0]))
    assert top.data.tolist() == [float("inf"), float("inf")]  # e^100 overflows float: no error


def test_infinite_base_is_refused() -> None:
    with pytest.raises(LayerError, match="log\\(base\\) = inf"):
        run_forward("Exp", "exp_param { base: inf }", torch.ones(3))
