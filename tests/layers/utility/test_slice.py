from __future__ import annotations

import pytest
import torch

from recaffe.layer import LayerError
from recaffe.testing.layer_case import LayerCase


def slice_axis(param) -> int:
    p = param.slice_param
    return p.slice_dim if p.HasField("slice_dim") else p.axis


class TestSlice(LayerCase):
    layer_type = "Slice"
    params = [
        "slice_param { slice_point: 1 slice_point: 3 }",
        "slice_param { axis: 0 }",
        "slice_param { slice_dim: 2 slice_point: 1 }",
        "slice_param { axis: -1 slice_point: 2 slice_point: 3 slice_point: 4 }",
    ]
    bottom_shapes = [(6, 5, 4, 5)]

    def top_count(self, param):
        return len(param.slice_param.slice_point) + 1 if param.slice_param.slice_point else 3

    def reference(self, bottoms, blobs, param):
        (x,) = bottoms
        axis = slice_axis(param) % x.dim()
        bounds = [0, *param.slice_param.slice_point, x.shape[axis]]
        if not param.slice_param.slice_point:
            bounds = [i * x.shape[axis] // 3 for i in range(4)]
        return tuple(x.narrow(axis, a, b - a) for a, b in zip(bounds[:-1], bounds[1:]))


class TestSliceOneTop(LayerCase):
    layer_type = "Slice"
    bottom_shapes = [(2, 3)]

    def reference(self, bottoms, blobs, param):
        return (bottoms[0] * 1,)


def test_one_top_shares_data_and_diff() -> None:
    layer, bottom, top = TestSliceOneTop().build("", torch.float32)
    bottom[0].data.fill_(3.0)
    top[0].diff.fill_(2.0)
    assert float(top[0].data.min()) == 3.0
    assert float(bottom[0].diff.min()) == 2.0


def test_a_last_point_at_the_end_gives_an_empty_top() -> None:
    # Caffe accepts it: the slices sum to the bottom's count.
    case = TestSlice()
    layer, bottom, top = case.build("slice_param { slice_point: 2 slice_point: 5 }", torch.float64)
    case.forward(layer, bottom, top)
    assert [t.shape[1] for t in top] == [2, 3, 0]


@pytest.mark.parametrize(("snippet", "tops", "message"), [
    ("slice_param { axis: 1 slice_dim: 1 }", 2, "not both"),
    ("slice_param { slice_dim: 4 }", 2, "slice_dim 4 out of range"),
    ("slice_param { slice_point: 2 }", 3, "1 slice_point values given for 3 tops"),
    ("slice_param { slice_point: 3 slice_point: 2 }", 3, "strictly increasing"),
    ("slice_param { slice_point: 0 slice_point: 2 }", 3, "strictly increasing"),
    ("slice_param { slice_point: 6 }", 2, "strictly increasing"),
    ("", 2, "do not divide"),
    ("slice_param { slice_point: 1 slice_point: 2 slice_point: 3 slice_point: 4 slice_point: 5 }", 6,
     "exceed"),
])
def test_bad_parameters_are_reported(snippet: str, tops: int, message: str) -> None:
    case = TestSlice()
    case.top_count = lambda param: tops
    with pytest.raises(LayerError, match=message):
        case.build(snippet, torch.float64)
