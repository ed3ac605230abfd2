from __future__ import annotations

import pytest
import torch

from recaffe.layer import LayerError
from recaffe.testing.layer_case import LayerCase


class TestFilter(LayerCase):
    layer_type = "Filter"
    bottom_shapes = [(4, 3, 6, 4), (4, 1, 1, 1), (4, 1, 1, 1)]
    num_tops = 2
    check_bottoms = [0, 1]  # no gradient to the selector
    threshold = 1e-3
    selector = [0.0, 1.0, 1.0, 0.0]

    def make_bottoms(self, param, generator):
        data = torch.randn(self.bottom_shapes[0], generator=generator, dtype=torch.float64)
        labels = torch.randint(0, 5, self.bottom_shapes[1], generator=generator).double()
        selector = torch.tensor(self.selector, dtype=torch.float64).view(self.bottom_shapes[2])
        return [data, labels, selector]

    def reference(self, bottoms, blobs, param):
        *xs, selector = bottoms
        keep = selector.detach().reshape(-1) != 0
        return tuple(x[keep] for x in xs)


class TestFilterNegativeSelector(TestFilter):
    selector = [-2.0, 0.0, 0.0, 0.5]  # any non-zero value keeps the item


def build(selector: list[float], dtype: torch.dtype = torch.float32):
    case = TestFilter()
    case.selector = selector
    layer, bottom, top = case.build("", dtype)
    return case, layer, bottom, top


def test_setup_keeps_every_item_and_forward_filters() -> None:
    case, layer, bottom, top = build([0.0, 1.0, 1.0, 0.0])
    assert [t.shape for t in top] == [(4, 3, 6, 4), (4, 1, 1, 1)]  # Caffe's first reshape
    case.forward(layer, bottom, top)
    assert [t.shape for t in top] == [(2, 3, 6, 4), (2, 1, 1, 1)]
    assert torch.equal(top[0].data[0], bottom[0].data[1])
    assert torch.equal(top[0].data[1], bottom[0].data[2])
    assert float(top[1].data[0, 0, 0, 0]) == float(bottom[1].data[1, 0, 0, 0])
    assert float(top[1].data[1, 0, 0, 0]) == float(bottom[1].data[2, 0, 0, 0])


def test_backward_zeroes_the_dropped_items() -> None:
    case, layer, bottom, top = build([1.0, 0.0, 0.0, 1.0], torch.float64)
    case.forward(layer, bottom, top)
    top[0].diff.copy_(torch.arange(1.0, 3.0, dtype=torch.float64).view(2, 1, 1, 1).expand(2, 3, 6, 4))
    for blob in bottom:
        blob.diff.fill_(7.0)
    layer.run_backward(top, [True, False, False], bottom)
    assert bottom[0].diff.reshape(4, -1).mean(dim=1).tolist() == [1.0, 0.0, 0.0, 2.0]
    assert bool((bottom[1].diff == 7.0).all()) and bool((bottom[2].diff == 7.0).all())


def test_nothing_selected_gives_empty_tops_and_zero_gradients() -> None:
    case, layer, bottom, top = build([0.0, 0.0, 0.0, 0.0], torch.float64)
    case.forward(layer, bottom, top)
    assert [t.shape for t in top] == [(0, 3, 6, 4), (0, 1, 1, 1)]
    bottom[0].diff.fill_(7.0)
    layer.run_backward(top, [True, False, False], bottom)
    assert bool((bottom[0].diff == 0.0).all())


def test_selection_follows_the_selector_on_every_forward() -> None:
    case, layer, bottom, top = build([0.0, 1.0, 1.0, 0.0])
    case.forward(layer, bottom, top)
    bottom[2].data.copy_(torch.tensor([1.0, 1.0, 1.0, 0.0]).view(4, 1, 1, 1))
    layer.run_forward(bottom, top)
    assert torch.equal(top[0].data, bottom[0].data[:3])


def test_selector_may_be_one_dimensional() -> None:
    case = TestFilter()
    case.bottom_shapes = [(4, 2), (4, 1), (4,)]
    case.num_tops = 2
    layer, bottom, top = case.build("", torch.float32)
    case.forward(layer, bottom, top)
    assert top[0].shape == (2, 2)


@pytest.mark.parametrize(("shapes", "tops", "message"), [
    ([(4, 3), (4, 2)], 1, r"selector dims must be 1 except the first, got shape \(4, 2\)"),
    ([(3, 3), (4, 1)], 1, r"bottom\[0\] has 3 items but the selector has 4"),
    ([(4, 3), (4, 3), (4, 1)], 1, "needs one top per filtered bottom"),
])
def test_bad_shapes_are_reported(shapes, tops: int, message: str) -> None:
    case = TestFilter()
    case.bottom_shapes, case.num_tops = shapes, tops
    case.make_bottoms = lambda param, generator: [torch.ones(s, dtype=torch.float64) for s in shapes]
    with pytest.raises(LayerError, match=message):
        case.build("", torch.float32)


def test_gradient_to_the_selector_is_refused() -> None:
    case, layer, bottom, top = build([0.0, 1.0, 1.0, 0.0])
    case.forward(layer, bottom, top)
    with pytest.raises(LayerError, match="cannot backpropagate to the selector"):
        layer.run_backward(top, [True, False, True], bottom)
