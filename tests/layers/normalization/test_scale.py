from __future__ import annotations

import pytest
import torch

from recaffe.layer import LayerError
from recaffe.testing.layer_case import LayerCase
from tests.layers.normalization.test_bias import check_in_place_matches, expand, operand_bottoms

FILLERS = 'filler { type: "gaussian" } bias_filler { type: "gaussian" }'


class TestScale(LayerCase):
    layer_type = "Scale"
    params = [  # every case has outer > 1 or a scalar scale, where the scale diff accumulates
        "",
        f"scale_param {{ {FILLERS} }}",
        f"scale_param {{ bias_term: true {FILLERS} }}",
        f"scale_param {{ axis: 2 num_axes: 2 {FILLERS} }}",
        f"scale_param {{ num_axes: 0 bias_term: true {FILLERS} }}",
        f"scale_param {{ axis: -1 {FILLERS} }}",
        f"scale_param {{ num_axes: -1 bias_term: true {FILLERS} }}",
    ]
    bottom_shapes = [(2, 3, 4, 5)]
    in_place = True

    def reference(self, bottoms, blobs, param):
        p, x = param.scale_param, bottoms[0]
        scale = bottoms[1] if len(bottoms) > 1 else blobs[0]
        y = x * expand(scale, x, p.axis)
        if p.bias_term:
            y = y + expand(blobs[-1], x, p.axis)
        return (y,)


class TestScaleDiffOverwritten(TestScale):
    # outer == 1 with a non-scalar scale: Caffe assigns the scale diff instead of accumulating it
    # (see test_scale_diff_overwrite_quirk); the bias diff still accumulates.
    params = [
        f"scale_param {{ axis: 0 num_axes: 2 {FILLERS} }}",
        f"scale_param {{ axis: 0 num_axes: -1 {FILLERS} }}",
        f"scale_param {{ axis: 0 bias_term: true {FILLERS} }}",
    ]
    accumulates_param_diffs = (False, True)  # the scale's diff is assigned, the bias's accumulated


class TestScaleTwoBottoms(TestScale):
    params = [
        "",
        "scale_param { axis: 0 }",
        f"scale_param {{ axis: 2 bias_term: true {FILLERS} }}",
        "scale_param { axis: -1 num_axes: 3 }",  # num_axes only shapes a learned scale
    ]
    in_place = False  # the harness cannot run two bottoms in place; see test_two_bottoms_in_place

    def make_bottoms(self, param, generator):
        return operand_bottoms(self, param.scale_param.axis, generator)


class TestScaleScalarBottom(TestScale):
    params = ["", "scale_param { axis: 3 }"]  # a scalar applies everywhere whatever the axis
    bottom_shapes = [(2, 3, 4, 5), ()]
    in_place = False


@pytest.mark.parametrize("snippet", TestScaleTwoBottoms.params[:3])
def test_two_bottoms_in_place(snippet: str) -> None:
    check_in_place_matches(TestScaleTwoBottoms(), snippet)


def test_default_filler_is_one_but_a_given_filler_is_used() -> None:
    layer, _, _ = TestScale().build("", torch.float64)
    assert bool((layer.blobs[0].data == 1).all())
    layer, _, _ = TestScale().build('scale_param { filler { type: "constant" } }', torch.float64)
    assert bool((layer.blobs[0].data == 0).all())  # a given filler counts, even at its defaults


def test_blobs_are_scale_then_bias_or_bias_alone() -> None:
    layer, _, _ = TestScale().build(f"scale_param {{ bias_term: true {FILLERS} }}", torch.float64)
    assert [b.shape for b in layer.blobs] == [(3,), (3,)]
    layer, _, _ = TestScaleTwoBottoms().build(f"scale_param {{ bias_term: true {FILLERS} }}", torch.float64)
    assert [b.shape for b in layer.blobs] == [(3, 4)]  # the bias takes bottom[1]'s shape


def test_scalar_bottom_values() -> None:
    case = TestScaleScalarBottom()
    layer, bottom, top = case.build("", torch.float64)
    case.forward(layer, bottom, top)
    torch.testing.assert_close(top[0].data, bottom[0].data * float(bottom[1].data))


@pytest.mark.parametrize(("snippet", "overwrites"), [
    ("scale_param { axis: 0 num_axes: 2 }", True),   # outer 1, scale 6, inner 20
    ("scale_param { axis: 0 num_axes: -1 }", True),  # scale as big as the bottom
    ("scale_param { num_axes: 0 }", False),          # scalar over 120 elements: accumulates
    ("scale_param { axis: 1 }", False),              # outer 2: accumulates
])
def test_scale_diff_overwrite_quirk(snippet: str, overwrites: bool) -> None:
    case = TestScale()
    layer, bottom, top = case.build(snippet, torch.float64)
    case.forward(layer, bottom, top)
    top[0].diff.fill_(0.5)
    layer.run_backward(top, [False], bottom)
    once = layer.blobs[0].diff.clone()
    layer.run_backward(top, [False], bottom)
    torch.testing.assert_close(layer.blobs[0].diff, once if overwrites else 2 * once)


def test_shape_mismatch_is_reported() -> None:
    case = TestScale()
    case.bottom_shapes = [(2, 3, 4, 5), (3, 5)]
    with pytest.raises(LayerError, match="dimension mismatch"):
        case.build("", torch.float64)
