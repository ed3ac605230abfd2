from __future__ import annotations

import pytest
import torch

from recaffe.layer import LayerError
from recaffe.testing.layer_case import LayerCase

# Each parameter with the top shape Caffe gives for a (2, 3, 6, 5) bottom.
EXPECTED = {
    "reshape_param { shape { dim: 0 dim: -1 dim: 1 dim: 1 } }": (2, 90, 1, 1),
    "reshape_param { shape { dim: 0 dim: 0 dim: 0 dim: 0 } }": (2, 3, 6, 5),
    "reshape_param { shape { dim: 0 dim: 3 dim: 10 dim: -1 } }": (2, 3, 10, 3),
    "reshape_param { axis: 1 shape { dim: 3 dim: 10 dim: -1 } }": (2, 3, 10, 3),
    "reshape_param { axis: 0 num_axes: 0 shape { dim: 1 dim: 1 dim: 1 } }": (1, 1, 1, 2, 3, 6, 5),
    "reshape_param { axis: 2 num_axes: 0 shape { dim: 1 dim: 1 dim: 1 } }": (2, 3, 1, 1, 1, 6, 5),
    "reshape_param { axis: -1 num_axes: 0 shape { dim: 1 dim: 1 dim: 1 } }": (2, 3, 6, 5, 1, 1, 1),
    "reshape_param { axis: 1 num_axes: 2 shape { dim: -1 } }": (2, 18, 5),
    "reshape_param { axis: 1 num_axes: 1 shape { dim: 3 dim: 1 } }": (2, 3, 1, 6, 5),
    "reshape_param { axis: -2 shape { dim: 0 dim: -1 } }": (2, 3, 6, 5, 1),
    "reshape_param { shape { dim: 6 dim: 2 dim: 3 dim: 5 } }": (6, 2, 3, 5),
}


class TestReshape(LayerCase):
    layer_type = "Reshape"
    params = list(EXPECTED)
    bottom_shapes = [(2, 3, 6, 5)]
    stepsize, threshold = 1e-2, 1e-2

    def reference(self, bottoms, blobs, param):
        shape = next(s for snippet, s in EXPECTED.items() if self.layer_param(snippet) == param)
        return (bottoms[0].reshape(shape),)


@pytest.mark.parametrize("snippet", list(EXPECTED))
def test_top_shape_matches_caffe(snippet: str) -> None:
    _, _, top = TestReshape().build(snippet, torch.float32)
    assert top[0].shape == EXPECTED[snippet]


def test_flattened_values_follow_row_major_order() -> None:
    case = TestReshape()
    layer, bottom, top = case.build("reshape_param { shape { dim: 0 dim: -1 dim: 1 dim: 1 } }",
                                    torch.float32)
    case.forward(layer, bottom, top)
    assert (top[0].num, top[0].channels, top[0].height, top[0].width) == (2, 90, 1, 1)
    x, y = bottom[0].data, top[0].data
    for c in range(90):
        assert float(y[1, c, 0, 0]) == float(x[1, c // 30, (c // 5) % 6, c % 5])


def test_forward_after_the_bottom_is_reshaped() -> None:
    case = TestReshape()
    layer, bottom, top = case.build("reshape_param { shape { dim: 6 dim: 2 dim: 3 dim: 5 } }",
                                    torch.float32)
    case.forward(layer, bottom, top)
    bottom[0].reshape((180,))
    bottom[0].data.normal_(generator=torch.Generator().manual_seed(3))
    layer.run_forward(bottom, top)
    assert top[0].shape == (6, 2, 3, 5)
    assert torch.equal(top[0].data.reshape(-1), bottom[0].data)


def test_sharing_follows_a_bottom_that_grows() -> None:
    case = TestReshape()
    layer, bottom, top = case.build("reshape_param { shape { dim: 0 dim: -1 } }", torch.float32)
    bottom[0].reshape((4, 3, 6, 5))  # more elements: the bottom gets new memory
    bottom[0].data.copy_(torch.arange(360.0).view(4, 3, 6, 5))
    layer.run_forward(bottom, top)
    assert top[0].shape == (4, 90)
    assert torch.equal(top[0].data, torch.arange(360.0).view(4, 90))
    top[0].diff.fill_(5.0)
    assert float(bottom[0].diff.min()) == 5.0


def test_empty_shape_over_one_element_gives_a_0_axis_top() -> None:
    case = TestReshape()
    case.bottom_shapes = [(1, 1)]
    _, _, top = case.build("reshape_param { shape { } }", torch.float32)
    assert top[0].shape == ()


@pytest.mark.parametrize(("snippet", "message"), [
    ("reshape_param { shape { dim: -1 dim: -1 } }", "at most one -1"),
    ("reshape_param { shape { dim: -2 dim: 90 } }", r"dims must be >= -1, got \[-2, 90\]"),
    ("reshape_param { shape { dim: 7 dim: 2 } }", r"output count must match input count: top shape \(7, 2\)"),
    ("reshape_param { shape { dim: 7 dim: -1 } }", r"bottom count \(180\) must be divisible .* \(7\)"),
    ("reshape_param { axis: 5 shape { dim: 1 } }", "axis 5 out of range for a 4-D bottom"),
    ("reshape_param { axis: -6 shape { dim: 1 } }", "axis -6 out of range"),
    ("reshape_param { num_axes: -2 shape { dim: 1 } }", "num_axes must be >= 0, or -1"),
    ("reshape_param { axis: 3 num_axes: 2 shape { dim: 5 } }", "axis \\+ num_axes = 5 out of range"),
    ("reshape_param { axis: -1 num_axes: 0 shape { dim: 0 } }", "no axis 4 to copy"),
])
def test_bad_parameters_are_reported(snippet: str, message: str) -> None:
    with pytest.raises(LayerError, match=message):
        TestReshape().build(snippet, torch.float32)
