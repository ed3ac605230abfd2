from __future__ import annotations

import pytest
import torch

from recaffe.layer import LayerError
from recaffe.testing.layer_case import LayerCase


class TestTile(LayerCase):
    layer_type = "Tile"
    params = [
        "tile_param { tiles: 3 }",
        "tile_param { axis: 0 tiles: 3 }",
        "tile_param { tiles: 1 }",
        "tile_param { axis: -1 tiles: 2 }",
        "tile_param { axis: 2 tiles: 4 }",
    ]
    bottom_shapes = [(2, 3, 4, 5)]
    stepsize, threshold = 1e-2, 1e-2

    def reference(self, bottoms, blobs, param):
        (x,) = bottoms
        p = param.tile_param
        repeats = [1] * x.dim()
        repeats[p.axis % x.dim()] = p.tiles
        return (x.repeat(*repeats),)


@pytest.mark.parametrize("tiles", [1, 3])
@pytest.mark.parametrize("axis", [0, 1, 2, 3])
def test_only_the_tiled_axis_grows(axis: int, tiles: int) -> None:
    _, bottom, top = TestTile().build(f"tile_param {{ axis: {axis} tiles: {tiles} }}", torch.float32)
    expected = list(bottom[0].shape)
    expected[axis] *= tiles
    assert list(top[0].shape) == expected


@pytest.mark.parametrize("axis", [0, 1])
def test_forward_repeats_the_whole_block(axis: int) -> None:
    case = TestTile()
    layer, bottom, top = case.build(f"tile_param {{ axis: {axis} tiles: 3 }}", torch.float32)
    case.forward(layer, bottom, top)
    x, y = bottom[0].data, top[0].data
    for n in range(y.shape[0]):
        for c in range(y.shape[1]):
            source = x[n % 2, c] if axis == 0 else x[n, c % 3]
            assert torch.equal(y[n, c], source)


def test_backward_sums_the_copies() -> None:
    case = TestTile()
    layer, bottom, top = case.build("tile_param { axis: 1 tiles: 3 }", torch.float64)
    case.forward(layer, bottom, top)
    top[0].diff.copy_(torch.arange(top[0].count(), dtype=torch.float64).view(top[0].shape))
    layer.run_backward(top, [True], bottom)
    dy = top[0].diff
    torch.testing.assert_close(bottom[0].diff, dy[:, 0:3] + dy[:, 3:6] + dy[:, 6:9])


@pytest.mark.parametrize(("snippet", "message"), [
    ("tile_param { axis: 1 }", "tiles .* must be specified"),
    ("tile_param { tiles: 0 }", "tiles must be positive, got 0"),
    ("tile_param { tiles: -2 }", "tiles must be positive, got -2"),
    ("tile_param { axis: 4 tiles: 2 }", "axis 4 out of range"),
])
def test_bad_parameters_are_reported(snippet: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TestTile().build(snippet, torch.float32)


def test_errors_name_the_layer() -> None:
    with pytest.raises(LayerError, match="layer 'L' \\(Tile\\)"):
        TestTile().build("tile_param { tiles: 0 }", torch.float32)
