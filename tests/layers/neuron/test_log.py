from __future__ import annotations

import math

import pytest
import torch

from recaffe.layer import LayerError
from recaffe.testing.layer_case import LayerCase
from tests.layers.neuron.helpers import caffe_input, run_backward, run_forward

# (base, scale, shift): Caffe's TestLogLayer* combinations, plus the golden case's.
COMBINATIONS = [(-1, 1, 0), (2, 1, 0), (2, 1, 1), (2, 3, 0), (2, 3, 1), (-1, 2, 0.5)]


def snippet(base: float, scale: float, shift: float) -> str:
    return f"log_param {{ base: {base} scale: {scale} shift: {shift} }}"


class TestLog(LayerCase):
    layer_type = "Log"
    params = ["", *(snippet(*c) for c in COMBINATIONS[1:]), "log_param { base: 10 scale: -1 shift: 20 }"]

    def make_bottoms(self, param, generator):
        return [torch.randn((2, 3, 4, 5), generator=generator, dtype=torch.float64).exp()]

    def reference(self, bottoms, blobs, param):
        p = param.log_param
        ln_base = 1.0 if p.base == -1 else math.log(p.base)
        return (torch.log(p.shift + p.scale * bottoms[0]) / ln_base,)


@pytest.mark.parametrize("base, scale, shift", COMBINATIONS)
def test_values_match_the_log_in_the_base(base: float, scale: float, shift: float) -> None:
    x = caffe_input().exp()  # Caffe's LogBottomInit: e^gaussian
    _, _, top = run_forward("Log", snippet(base, scale, shift), x)
    want = torch.log(shift + scale * x.double()) / (1.0 if base == -1 else math.log(base))
    torch.testing.assert_close(top.data.double(), want, rtol=0, atol=2e-4)


def test_in_place_backward_reads_the_overwritten_input_as_caffe() -> None:
    x = torch.tensor([1.0, 2.0, 4.0])
    layer, bottom, top = run_forward("Log", "log_param { base: 2 }", x, in_place=True)
    assert top.data.tolist() == [0.0, 1.0, 2.0]
    dx = run_backward(layer, bottom, top, torch.ones(3))
    # x was overwritten by y, and the shared diff buffer holds 1/(y ln 2) when dy is read: squared
    y = torch.tensor([0.0, 1.0, 2.0])
    torch.testing.assert_close(dx, (1 / (y * math.log(2))) ** 2)


@pytest.mark.parametrize("base", [0, -3, 1])
def test_base_must_be_positive_and_not_one(base: float) -> None:
    with pytest.raises(LayerError, match="log_param.base"):
        run_forward("Log", f"log_param {{ base: {base} }}", torch.ones(3))
