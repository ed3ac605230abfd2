from __future__ import annotations

import pytest
import torch

from recaffe.blob import Blob
from recaffe.io import prototxt
from recaffe.layer import LayerError
from recaffe.layers.utility.eltwise import EltwiseLayer
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_case import LayerCase

SHAPE = (2, 3, 4, 5)


class TestEltwise(LayerCase):
    layer_type = "Eltwise"
    params = [
        "",
        "eltwise_param { operation: SUM coeff: 1 coeff: -0.5 coeff: 2 }",
        "eltwise_param { operation: PROD }",
        "eltwise_param { operation: PROD stable_prod_grad: false }",
        "eltwise_param { operation: MAX }",
        "eltwise_param { operation: MAX coeff: 3 coeff: 3 coeff: 3 }",  # MAX ignores coeff
    ]
    bottom_shapes = [SHAPE] * 3

    def make_bottoms(self, param, generator):
        # Distinct values at least 0.01 apart, away from 0: MAX has no near-ties within the
        # checker's step and PROD's y / x stays well conditioned.
        count = 3 * torch.Size(SHAPE).numel()
        values = (torch.randperm(count, generator=generator).double() - count / 2 + 0.5) * 0.01
        return list(values.view(3, *SHAPE).unbind(0))

    def reference(self, bottoms, blobs, param):
        p = param.eltwise_param
        if p.operation == caffe_pb2.EltwiseParameter.PROD:
            return (bottoms[0] * bottoms[1] * bottoms[2],)
        if p.operation == caffe_pb2.EltwiseParameter.MAX:
            return (torch.stack(list(bottoms)).amax(dim=0),)
        coeffs = list(p.coeff) or [1.0] * 3
        return (sum(c * x for c, x in zip(coeffs, bottoms)),)


def make_layer(text: str) -> EltwiseLayer:
    param = caffe_pb2.LayerParameter(name="e", type="Eltwise")
    prototxt.parse_text(text, param.eltwise_param)
    return EltwiseLayer(param, dtype=torch.float64)


def blobs_of(*rows: list[float]) -> list[Blob]:
    blobs = []
    for row in rows:
        blobs.append(Blob((len(row),), dtype=torch.float64))
        blobs[-1].data.copy_(torch.tensor(row, dtype=torch.float64))
    return blobs


def test_max_ties_and_gradient_routing() -> None:
    # position 0: bottoms 0 and 1 tie -> bottom 1; position 1: bottom 2 ties the max -> keeps bottom 0
    bottom = blobs_of([2.0, 5.0, 1.0], [2.0, 3.0, 1.0], [0.0, 5.0, 4.0])
    layer, top = make_layer("operation: MAX"), [Blob(dtype=torch.float64)]
    layer.setup(bottom, top)
    layer.run_forward(bottom, top)
    assert top[0].data.tolist() == [2.0, 5.0, 4.0]
    top[0].diff.copy_(torch.tensor([10.0, 20.0, 30.0]))
    layer.run_backward(top, [True] * 3, bottom)
    assert [b.diff.tolist() for b in bottom] == [[0, 20, 0], [10, 0, 0], [0, 0, 30]]


def test_prod_gradients_stable_and_unstable() -> None:
    for text in ("operation: PROD", "operation: PROD stable_prod_grad: false"):
        bottom = blobs_of([2.0, -1.0], [3.0, 4.0], [0.5, 2.0])
        layer, top = make_layer(text), [Blob(dtype=torch.float64)]
        layer.setup(bottom, top)
        layer.run_forward(bottom, top)
        top[0].diff.fill_(1.0)
        layer.run_backward(top, [True] * 3, bottom)
        assert bottom[0].diff.tolist() == [1.5, 8.0]
        assert bottom[2].diff.tolist() == [6.0, -4.0]


def test_sum_in_place_follows_caffes_order() -> None:
    # y is cleared first, then y += c_i x_i in order: with y = x1 this gives c0 (1 + c1) x0 + c2 x2
    bottom = blobs_of([1.0, 2.0], [10.0, 20.0], [100.0, 200.0])
    layer = make_layer("operation: SUM coeff: 2 coeff: 3 coeff: 0.5")
    layer.setup(bottom, [bottom[1]])
    layer.run_forward(bottom, [bottom[1]])
    assert bottom[1].data.tolist() == [2 * 4 * 1 + 50, 2 * 4 * 2 + 100]


def test_max_in_place_overwrites_its_bottom_first() -> None:
    # Caffe fills the top with -FLT_MAX before comparing, so with y = x0 bottom 0 never wins
    bottom = blobs_of([9.0, 9.0], [1.0, -2.0], [0.0, -3.0])
    layer = make_layer("operation: MAX")
    layer.setup(bottom, [bottom[0]])
    layer.run_forward(bottom, [bottom[0]])
    assert bottom[0].data.tolist() == [1.0, -2.0]


@pytest.mark.parametrize(("text", "shapes", "message"), [
    ("coeff: 1", [(2,), (2,)], "one coefficient per bottom"),
    ("operation: PROD coeff: 1 coeff: 2", [(2,), (2,)], "only allowed for SUM"),
    ("", [(2,), (3,)], "one shape"),
])
def test_bad_parameters_are_reported(text: str, shapes, message: str) -> None:
    with pytest.raises(LayerError, match=message):
        make_layer(text).setup([Blob(s) for s in shapes], [Blob()])
