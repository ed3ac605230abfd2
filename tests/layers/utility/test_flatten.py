from __future__ import annotations

import math

import pytest
import torch

from recaffe.layer import LayerError
from recaffe.testing.layer_case import LayerCase


class TestFlatten(LayerCase):
    layer_type = "Flatten"
    params = [
        "",
        "flatten_param { axis: 2 }",
        "flatten_param { end_axis: -2 }",
        "flatten_param { axis: 0 end_axis: -2 }",
        "flatten_param { axis: -3 end_axis: 2 }",
        "flatten_param { axis: 2 end_axis: 1 }",  # end = axis - 1: a singleton axis is inserted
    ]
    bottom_shapes = [(2, 3, 6, 5)]
    stepsize, threshold = 1e-2, 1e-2

    def reference(self, bottoms, blobs, param):
        (x,) = bottoms
        p = param.flatten_param
        start, end = p.axis % x.dim(), p.end_axis % x.dim()
        merged = math.prod(x.shape[start:end + 1])
        return (x.reshape(*x.shape[:start], merged, *x.shape[end + 1:]),)


@pytest.mark.parametrize(("snippet", "shape"), [
    ("", (2, 90)),
    ("flatten_param { axis: 2 }", (2, 3, 30)),
    ("flatten_param { end_axis: -2 }", (2, 18, 5)),
    ("flatten_param { axis: 0 end_axis: -2 }", (36, 5)),
    ("flatten_param { axis: 2 end_axis: 1 }", (2, 3, 1, 6, 5)),
])
def test_top_shapes(snippet: str, shape: tuple[int, ...]) -> None:
    _, _, top = TestFlatten().build(snippet, torch.float32)
    assert top[0].shape == shape


def test_values_follow_row_major_order() -> None:
    case = TestFlatten()
    layer, bottom, top = case.build("", torch.float32)
    case.forward(layer, bottom, top)
    x, y = bottom[0].data, top[0].data
    for c in range(90):
        assert float(y[0, c]) == float(x[0, c // 30, (c // 5) % 6, c % 5])
        assert float(y[1, c]) == float(x[1, c // 30, (c // 5) % 6, c % 5])


def test_top_shares_data_and_diff_with_the_bottom() -> None:
    layer, bottom, top = TestFlatten().build("", torch.float32)
    bottom[0].data.fill_(3.0)
    top[0].diff.fill_(2.0)
    assert float(top[0].data.min()) == 3.0 == float(top[0].data.max())
    assert float(bottom[0].diff.min()) == 2.0 == float(bottom[0].diff.max())


def test_sharing_follows_a_bottom_that_grows() -> None:
    case = TestFlatten()
    layer, bottom, top = case.build("", torch.float32)
    bottom[0].reshape((4, 3, 6, 5))  # more elements: the bottom gets new memory
    bottom[0].data.copy_(torch.arange(360.0).view(4, 3, 6, 5))
    layer.run_forward(bottom, top)
    assert top[0].shape == (4, 90)
    assert torch.equal(top[0].data, torch.arange(360.0).view(4, 90))


def test_end_axis_before_axis_is_reported() -> None:
    with pytest.raises(LayerError, match="end_axis 0 .* before flatten_param.axis 3"):
        TestFlatten().build("flatten_param { axis: 3 end_axis: 0 }", torch.float32)


def test_axis_out_of_range_is_reported() -> None:
    with pytest.raises(ValueError, match="axis 4 out of range"):
        TestFlatten().build("flatten_param { axis: 4 }", torch.float32)
