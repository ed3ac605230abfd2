from __future__ import annotations

import pytest
import torch

from recaffe import rng
from recaffe.blob import Blob
from recaffe.layer import LayerError
from recaffe.registry import LAYERS
from recaffe.testing.gradient_check import SEED
from recaffe.testing.layer_case import LayerCase

GAUSS = 'filler { type: "gaussian" }'
# bottom[1] shapes per axis for a (2, 3, 4, 5) bottom[0]
OPERAND_SHAPES = {0: (2, 3, 4, 5), 1: (3, 4), 2: (4, 5), -1: (5,)}


def expand(operand: torch.Tensor, x: torch.Tensor, axis: int) -> torch.Tensor:
    """``operand`` reshaped to broadcast against ``x`` from ``axis`` (a scalar anywhere)."""
    if operand.dim() == 0:
        return operand
    start = axis % x.dim()
    return operand.reshape((1,) * start + tuple(operand.shape) + (1,) * (x.dim() - start - operand.dim()))


def operand_bottoms(case: LayerCase, axis: int, generator: torch.Generator) -> list[torch.Tensor]:
    return [torch.randn(shape, generator=generator, dtype=torch.float64)
            for shape in [case.bottom_shapes[0], OPERAND_SHAPES[axis]]]


def check_in_place_matches(case: LayerCase, snippet: str) -> None:
    """In-place use (top = bottom[0]) with two bottoms gives the out-of-place tops and diffs."""
    param = case.layer_param(snippet)
    results = []
    for in_place in (False, True):
        bottom = []
        for values in case.make_bottoms(param, torch.Generator().manual_seed(SEED)):
            bottom.append(Blob(values.shape, dtype=torch.float64))
            bottom[-1].data.copy_(values)
        top = [bottom[0]] if in_place else [Blob(dtype=torch.float64)]
        rng.set_random_seed(SEED)
        layer = LAYERS.get(case.layer_type)(param, dtype=torch.float64)
        layer.setup(bottom, top)
        layer.run_forward(bottom, top)
        top[0].diff.copy_(torch.linspace(-1, 1, top[0].count(), dtype=torch.float64).view(top[0].shape))
        layer.run_backward(top, [True, True], bottom)
        results.append([top[0].data, bottom[0].diff, bottom[1].diff, *(b.diff for b in layer.blobs)])
    for mine, theirs in zip(*results):
        torch.testing.assert_close(mine, theirs)


class TestBias(LayerCase):
    layer_type = "Bias"
    params = [
        "",
        f"bias_param {{ {GAUSS} }}",
        f"bias_param {{ axis: 0 num_axes: 2 {GAUSS} }}",
        f"bias_param {{ axis: 2 num_axes: -1 {GAUSS} }}",
        f"bias_param {{ num_axes: 0 {GAUSS} }}",
        f"bias_param {{ axis: -1 {GAUSS} }}",
        f"bias_param {{ axis: 0 num_axes: -1 {GAUSS} }}",
    ]
    bottom_shapes = [(2, 3, 4, 5)]
    in_place = True

    def reference(self, bottoms, blobs, param):
        bias = bottoms[1] if len(bottoms) > 1 else blobs[0]
        return (bottoms[0] + expand(bias, bottoms[0], param.bias_param.axis),)


class TestBiasTwoBottoms(TestBias):
    params = ["", "bias_param { axis: 0 }", "bias_param { axis: 2 }", "bias_param { axis: -1 num_axes: 3 }"]
    in_place = False  # the harness cannot run two bottoms in place; see test_two_bottoms_in_place

    def make_bottoms(self, param, generator):
        return operand_bottoms(self, param.bias_param.axis, generator)


class TestBiasScalarBottom(TestBias):
    params = ["", "bias_param { axis: 3 }"]  # a scalar applies everywhere whatever the axis
    bottom_shapes = [(2, 3, 4, 5), ()]
    in_place = False


@pytest.mark.parametrize("snippet", ["", "bias_param { axis: 0 }"])
def test_two_bottoms_in_place(snippet: str) -> None:
    check_in_place_matches(TestBiasTwoBottoms(), snippet)


def test_learned_bias_shape_and_default_filler() -> None:
    layer, _, _ = TestBias().build("bias_param { axis: 1 num_axes: 2 }", torch.float32)
    assert layer.blobs[0].shape == (3, 4)
    assert torch.count_nonzero(layer.blobs[0].data) == 0  # constant 0


def test_broadcast_middle_values() -> None:
    case = TestBiasTwoBottoms()
    layer, bottom, top = case.build("", torch.float64)
    case.forward(layer, bottom, top)
    x, b = bottom[0].data, bottom[1].data
    assert float(top[0].data[1, 2, 3, 4]) == float(x[1, 2, 3, 4] + b[2, 3])


@pytest.mark.parametrize(("snippet", "shapes", "message"), [
    ("", [(2, 3, 4), (4,)], "dimension mismatch"),
    ("bias_param { axis: 2 }", [(2, 3, 4), (4, 1)], "extends past"),
    ("bias_param { num_axes: -2 }", [(2, 3, 4)], "num_axes"),
    ("bias_param { axis: 1 num_axes: 3 }", [(2, 3, 4)], "extends past"),
])
def test_bad_shapes_are_reported(snippet: str, shapes: list[tuple[int, ...]], message: str) -> None:
    case = TestBias()
    case.bottom_shapes = shapes
    with pytest.raises(LayerError, match=message):
        case.build(snippet, torch.float64)
