from __future__ import annotations

import pytest
import torch

from recaffe.layer import LayerError
from recaffe.testing.layer_case import LayerCase

BASE = (2, 3, 4, 5)


def concat_axis(param) -> int:
    p = param.concat_param
    return p.concat_dim if p.HasField("concat_dim") else p.axis


class TestConcat(LayerCase):
    layer_type = "Concat"
    params = ["", "concat_param { axis: 0 }", "concat_param { axis: -1 }", "concat_param { concat_dim: 2 }"]

    def make_bottoms(self, param, generator):
        axis = concat_axis(param) % len(BASE)
        shapes = [BASE[:axis] + (size,) + BASE[axis + 1:] for size in (1, 3, 2)]
        return [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in shapes]

    def reference(self, bottoms, blobs, param):
        return (torch.cat(list(bottoms), dim=concat_axis(param)),)


class TestConcatOneBottom(LayerCase):
    layer_type = "Concat"
    bottom_shapes = [(2, 3)]

    def reference(self, bottoms, blobs, param):
        return (bottoms[0] * 1,)


def test_one_bottom_shares_data_and_diff() -> None:
    layer, bottom, top = TestConcatOneBottom().build("", torch.float32)
    bottom[0].data.fill_(3.0)
    top[0].diff.fill_(2.0)
    assert float(top[0].data.min()) == 3.0
    assert float(bottom[0].diff.min()) == 2.0


def test_backward_writes_only_the_bottoms_asked_for() -> None:
    case = TestConcat()
    layer, bottom, top = case.build("", torch.float64)
    case.forward(layer, bottom, top)
    top[0].diff.copy_(torch.arange(top[0].count(), dtype=torch.float64).view(top[0].shape))
    for blob in bottom:
        blob.diff.fill_(7.0)
    layer.run_backward(top, [False, True, False], bottom)
    assert bool((bottom[0].diff == 7).all()) and bool((bottom[2].diff == 7).all())
    torch.testing.assert_close(bottom[1].diff, top[0].diff[:, 1:4])


@pytest.mark.parametrize(("snippet", "shapes", "message"), [
    ("concat_param { axis: 1 concat_dim: 1 }", [(2, 3), (2, 3)], "not both"),
    ("concat_param { concat_dim: 2 }", [(2, 3), (2, 3)], "concat_dim 2 out of range"),
    ("", [(2, 3, 4), (3, 3, 4)], "same shape except on axis 1"),
    ("", [(2, 3, 4), (2, 3)], "same number of axes"),
    ("concat_param { axis: 3 }", [(2, 3), (2, 3)], "out of range"),
])
def test_bad_parameters_and_shapes_are_reported(snippet: str, shapes, message: str) -> None:
    case = TestConcatOneBottom()
    case.bottom_shapes = shapes
    with pytest.raises(ValueError, match=message):
        case.build(snippet, torch.float64)


def test_concat_dim_errors_name_the_layer() -> None:
    case = TestConcatOneBottom()
    with pytest.raises(LayerError, match="'L'"):
        case.build("concat_param { concat_dim: 5 }", torch.float64)
