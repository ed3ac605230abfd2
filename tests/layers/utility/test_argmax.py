from __future__ import annotations

import pytest
import torch

from recaffe.layer import LayerError
from recaffe.testing.layer_case import LayerCase


class TestArgMax(LayerCase):
    layer_type = "ArgMax"
    params = [
        "",
        "argmax_param { out_max_val: true }",
        "argmax_param { top_k: 5 }",
        "argmax_param { out_max_val: true top_k: 5 }",
        "argmax_param { axis: 0 }",
        "argmax_param { axis: -2 top_k: 2 }",
        "argmax_param { axis: 2 top_k: 3 out_max_val: true }",
        "argmax_param { axis: -1 top_k: 5 out_max_val: true }",
    ]
    bottom_shapes = [(3, 4, 5, 6)]
    has_backward = False

    def reference(self, bottoms, blobs, param):
        # Gaussian data has no ties, so torch.topk's order is unambiguous here.
        (x,) = bottoms
        p = param.argmax_param
        if p.HasField("axis"):
            values, indices = x.topk(p.top_k, dim=p.axis)
            return (values if p.out_max_val else indices.double(),)
        values, indices = x.reshape(x.shape[0], -1).topk(p.top_k, dim=1)
        rows = [indices.double(), values] if p.out_max_val else [indices.double()]
        return (torch.stack(rows, dim=1).reshape(x.shape[0], len(rows), p.top_k, 1),)


def run(snippet: str, x: torch.Tensor) -> torch.Tensor:
    case = TestArgMax()
    case.bottom_shapes = [tuple(x.shape)]
    case.make_bottoms = lambda param, generator: [x.double()]
    layer, bottom, top = case.build(snippet, torch.float32)
    case.forward(layer, bottom, top)
    return top[0].data


@pytest.mark.parametrize(("snippet", "shape"), [
    ("", (3, 1, 1, 1)),
    ("argmax_param { out_max_val: true }", (3, 2, 1, 1)),
    ("argmax_param { top_k: 4 }", (3, 1, 4, 1)),
    ("argmax_param { axis: 0 }", (1, 4, 5, 6)),
    ("argmax_param { axis: -2 top_k: 2 }", (3, 4, 2, 6)),
    ("argmax_param { axis: 2 out_max_val: true top_k: 3 }", (3, 4, 3, 6)),
])
def test_top_shapes(snippet: str, shape: tuple[int, ...]) -> None:
    _, _, top = TestArgMax().build(snippet, torch.float32)
    assert top[0].shape == shape


def test_two_axis_bottom_gets_a_three_axis_top() -> None:
    assert run("argmax_param { top_k: 2 }", torch.randn(4, 6)).shape == (4, 1, 2)
    assert run("argmax_param { out_max_val: true }", torch.randn(4, 6)).shape == (4, 2, 1)


def test_ties_rank_the_higher_index_first() -> None:
    x = torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0, 0.0]])
    top = run("argmax_param { top_k: 4 out_max_val: true }", x)
    assert top.reshape(2, 4).tolist() == [[4.0, 2.0, 1.0, 3.0], [3.0, 3.0, 3.0, 2.0]]
    assert run("", x).reshape(-1).tolist() == [4.0]
    assert run("argmax_param { axis: 1 out_max_val: false }", x).tolist() == [[4.0]]
    along = run("argmax_param { axis: 0 top_k: 2 }", torch.tensor([[5.0, 1.0], [5.0, 2.0], [0.0, 2.0]]))
    assert along.tolist() == [[1.0, 2.0], [0.0, 1.0]]


def test_top_k_ranks_match_a_full_sort() -> None:
    # Caffe's check: the j-th reported entry has exactly j entries larger than it.
    x = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(5))
    top = run("argmax_param { out_max_val: true top_k: 5 }", x)
    flat = x.reshape(4, -1)
    for n in range(4):
        for j in range(5):
            index, value = int(top[n, 0, j, 0]), float(top[n, 1, j, 0])
            assert float(flat[n, index]) == value
            assert int((flat[n] > value).sum()) == j
    along = run("argmax_param { axis: 2 top_k: 5 }", x)
    for j in range(5):
        picked = x.gather(2, along[:, :, j:j + 1].long())
        assert bool(((x > picked).sum(dim=2) == j).all())


@pytest.mark.parametrize(("snippet", "message"), [
    ("argmax_param { top_k: 0 }", "top_k must be >= 1, got 0"),
    ("argmax_param { top_k: 121 }", "top_k 121 exceeds the 120 entries"),
    ("argmax_param { axis: 1 top_k: 5 }", "top_k 5 exceeds dim 4 of axis 1"),
    ("argmax_param { axis: 4 }", "axis 4 out of range"),
])
def test_bad_parameters_are_reported(snippet: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TestArgMax().build(snippet, torch.float32)


def test_backward_is_refused() -> None:
    layer, bottom, top = TestArgMax().build("", torch.float32)
    with pytest.raises(LayerError, match="cannot propagate"):
        layer.run_backward(top, [True], bottom)
    bottom[0].diff.fill_(7.0)
    layer.run_backward(top, [False], bottom)  # nothing asked: nothing to do
    assert bool((bottom[0].diff == 7.0).all())
