from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs, Layer
from recaffe.registry import LAYERS


@LAYERS.register("Tile")
@final
class TileLayer(Layer):
    """Repeats the bottom ``tiles`` times along ``axis`` (numpy's tile on that one axis).

    Forward: with x viewed as (outer, inner), inner = count(axis:), y = (outer, tiles, inner) with
        y[o, t, :] = x[o, :] for every t.
    Backward: dx[o, :] = Σ_t dy[o, t, :].
    Params (tile_param): axis=1 (negative counts from the end), tiles (required, > 0).
    Bottoms: x (d_0, ..., d_{n-1}).
    Tops: y, x's shape with shape[axis] = d_axis·tiles.
    In place: no (the shapes differ).
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.tile_param
        if not p.HasField("tiles"):
            raise self.error("tile_param.tiles (the number of copies) must be specified")
        if p.tiles <= 0:
            raise self.error(f"tile_param.tiles must be positive, got {p.tiles}")

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        p, x = self.param.tile_param, bottom[0]
        axis = x.canonical_axis(p.axis)
        shape = list(x.shape)
        shape[axis] *= p.tiles
        top[0].reshape(shape)
        self.outer, self.inner = x.count(0, axis), x.count(axis)

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        tiles = self.param.tile_param.tiles
        x = bottom[0].data.view(self.outer, 1, self.inner)
        top[0].data.view(self.outer, tiles, self.inner).copy_(x.expand(-1, tiles, -1))

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if propagate_down[0]:
            dy = top[0].diff.view(self.outer, self.param.tile_param.tiles, self.inner)
            torch.sum(dy, dim=1, out=bottom[0].diff.view(self.outer, self.inner))
