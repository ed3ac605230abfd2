from __future__ import annotations

import pytest
import torch

from recaffe.layer import LayerError
from recaffe.testing.layer_case import LayerCase

PERMUTATION = [4, 0, 4, 0, 1, 2]


class TestBatchReindex(LayerCase):
    layer_type = "BatchReindex"
    bottom_shapes = [(5, 4, 3, 2), (6,)]
    check_bottoms = [0]  # no gradient to the indices
    stepsize, threshold = 1e-4, 1e-2
    index = PERMUTATION

    def make_bottoms(self, param, generator):
        x = torch.randn(self.bottom_shapes[0], generator=generator, dtype=torch.float64)
        return [x, torch.tensor(self.index, dtype=torch.float64)]

    def reference(self, bottoms, blobs, param):
        x, index = bottoms
        return (x[index.detach().long()],)


def build(index: list[float], shape: tuple[int, ...] = (5, 4, 3, 2), dtype: torch.dtype = torch.float32):
    case = TestBatchReindex()
    case.index, case.bottom_shapes = index, [shape, (len(index),)]
    layer, bottom, top = case.build("", dtype)
    return case, layer, bottom, top


def test_forward_gathers_items() -> None:
    case, layer, bottom, top = build(PERMUTATION)
    bottom[0].data.copy_(torch.arange(120.0).view(5, 4, 3, 2))
    case.forward(layer, bottom, top)
    assert top[0].shape == (6, 4, 3, 2)
    for i, n in enumerate(PERMUTATION):
        assert torch.equal(top[0].data[i], torch.arange(24.0).view(4, 3, 2) + 24 * n)


def test_backward_adds_up_repeated_items() -> None:
    case, layer, bottom, top = build(PERMUTATION, dtype=torch.float64)
    case.forward(layer, bottom, top)
    top[0].diff.fill_(1.0)
    bottom[0].diff.fill_(7.0)
    layer.run_backward(top, [True, False], bottom)
    picks = bottom[0].diff.reshape(5, -1)[:, 0].tolist()
    assert picks == [2.0, 1.0, 1.0, 0.0, 2.0]  # item 3 is never picked: its diff is zeroed


def test_fractional_indices_are_truncated() -> None:
    case, layer, bottom, top = build([4.9, 0.5])
    case.forward(layer, bottom, top)
    assert torch.equal(top[0].data, bottom[0].data[[4, 0]])


def test_empty_index_gives_an_empty_top() -> None:
    case, layer, bottom, top = build([])
    case.forward(layer, bottom, top)
    assert top[0].shape == (0, 4, 3, 2)


@pytest.mark.parametrize(("index", "message"), [
    ([0, 5], r"index 5.0 in bottom\[1\] is outside the batch \[0, 5\)"),
    ([-1, 2], "index -1.0"),
    ([-0.5], "index -0.5"),
])
def test_out_of_range_indices_are_reported(index: list[float], message: str) -> None:
    case, layer, bottom, top = build(index)
    with pytest.raises(LayerError, match=message):
        case.forward(layer, bottom, top)


def test_index_bottom_must_be_one_dimensional() -> None:
    case = TestBatchReindex()
    case.make_bottoms = lambda param, generator: [torch.zeros(5, 2), torch.zeros(2, 3)]
    with pytest.raises(LayerError, match=r"index bottom must be 1-D, got shape \(2, 3\)"):
        case.build("", torch.float32)


def test_gradient_to_the_indices_is_refused() -> None:
    case, layer, bottom, top = build(PERMUTATION)
    case.forward(layer, bottom, top)
    with pytest.raises(LayerError, match="cannot backpropagate to the indices"):
        layer.run_backward(top, [True, True], bottom)
