from __future__ import annotations

import numpy as np
import pytest
import torch

from recaffe.blob import Blob
from recaffe.io import prototxt
from recaffe.layers.utility.reduction import ReductionLayer
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_case import LayerCase

OPS = ["SUM", "ASUM", "SUMSQ", "MEAN"]


class TestReduction(LayerCase):
    layer_type = "Reduction"
    params = [f"reduction_param {{ operation: {op} }}" for op in OPS] + [
        f"reduction_param {{ operation: {op} coeff: 2.3 axis: 1 }}" for op in OPS] + [
        "reduction_param { operation: MEAN axis: -1 coeff: -0.5 }",
        "reduction_param { operation: SUMSQ axis: 2 }",
        "reduction_param { operation: ASUM axis: 3 coeff: 3 }",
    ]
    bottom_shapes = [(2, 3, 4, 5)]
    stepsize, threshold = 1e-2, 2e-3
    kink, kink_range = 0.0, 0.02  # |x| has a kink at 0

    def reference(self, bottoms, blobs, param):
        (x,) = bottoms
        p = param.reduction_param
        rows = x.reshape(*x.shape[:p.axis % x.dim()], -1)
        op = caffe_pb2.ReductionParameter.ReductionOp.Name(p.operation)
        reduced = {"SUM": rows.sum(-1), "ASUM": rows.abs().sum(-1),
                   "SUMSQ": (rows**2).sum(-1), "MEAN": rows.mean(-1)}[op]
        return (p.coeff * reduced,)


def reduce(
    snippet: str, x: torch.Tensor, dtype: torch.dtype = torch.float32
) -> tuple[Blob, Blob, ReductionLayer]:
    param = prototxt.parse_text(snippet, caffe_pb2.LayerParameter(name="r", type="Reduction"))
    layer = ReductionLayer(param, dtype=dtype)
    bottom, top = Blob(x.shape, dtype=dtype), Blob(dtype=dtype)
    bottom.data.copy_(x)
    layer.setup([bottom], [top])
    layer.run_forward([bottom], [top])
    return bottom, top, layer


@pytest.mark.parametrize(("axis", "shape"), [(0, ()), (1, (2,)), (2, (2, 3)), (-1, (2, 3, 4))])
def test_top_keeps_the_axes_before_axis(axis: int, shape: tuple[int, ...]) -> None:
    _, top, _ = reduce(f"reduction_param {{ axis: {axis} }}", torch.ones(2, 3, 4, 5))
    assert top.shape == shape
    assert top.num_axes == len(shape)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("coeff", [1.0, 2.3])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_forward_values(op: str, coeff: float, axis: int) -> None:
    # Caffe's TestForward: uniform [0, 1) data, each output computed term by term.
    x = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(1701))
    _, top, _ = reduce(f"reduction_param {{ operation: {op} coeff: {coeff} axis: {axis} }}", x)
    rows = x.double().numpy().reshape(int(np.prod(x.shape[:axis])), -1)
    dim = rows.shape[1]
    terms = {"SUM": rows, "MEAN": rows / dim, "ASUM": np.abs(rows), "SUMSQ": rows * rows}[op]
    expected = terms.sum(axis=1) * np.float32(coeff)
    np.testing.assert_allclose(top.data.reshape(-1).numpy(), expected, rtol=2e-7 * 4)


def test_hand_computed_values_and_gradients() -> None:
    x = torch.tensor([[1.0, -2.0, 0.0], [3.0, -4.0, 0.5]])
    dy = torch.tensor([1.0, -2.0])
    cases = {
        "SUM": ([-1.0, -0.5], [[1.0] * 3, [-2.0] * 3]),
        "ASUM": ([3.0, 7.5], [[1.0, -1.0, 0.0], [-2.0, 2.0, -2.0]]),  # sign(0) = 0
        "SUMSQ": ([5.0, 25.25], [[2.0, -4.0, 0.0], [-12.0, 16.0, -2.0]]),
        "MEAN": ([-1 / 3, -0.5 / 3], [[1 / 3] * 3, [-2 / 3] * 3]),
    }
    for op, (forward, gradient) in cases.items():
        bottom, top, layer = reduce(f"reduction_param {{ operation: {op} axis: 1 }}", x, torch.float64)
        torch.testing.assert_close(top.data, torch.tensor(forward, dtype=torch.float64))
        top.diff.copy_(dy)
        layer.run_backward([top], [True], [bottom])
        torch.testing.assert_close(bottom.diff, torch.tensor(gradient, dtype=torch.float64))


def test_mean_coefficient_is_rounded_in_the_blob_precision() -> None:
    _, _, layer = reduce("reduction_param { operation: MEAN coeff: 2.3 }", torch.ones(7))
    assert layer.coeff == float(torch.tensor(2.3, dtype=torch.float32) / 7)
