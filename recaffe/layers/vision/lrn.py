from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import final

import torch
import torch.nn.functional as F

from recaffe.layer import Blobs, Layer
from recaffe.layers.vision.shapes import require_4d
from recaffe.math import layout, pieces
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS
from recaffe.workers import SERIAL, Workers

ACROSS_CHANNELS = caffe_pb2.LRNParameter.ACROSS_CHANNELS
# Elements per piece of work (``LRNLayer._tiles``): 1 MB of float32, cache-sized.
TILE = 1 << 18


@LAYERS.register("LRN")
@final
class LRNLayer(Layer):
    """Local response normalization: y = x · scale^(−β) over a window of n = local_size.

    ACROSS_CHANNELS: scale = k + (α/n) · Σ_{|c′−c| ≤ (n−1)/2} x_{c′}² (channels zero-padded).
        Backward: dx = dy · scale^(−β) − (2αβ/n) · x · Σ_{|c′−c| ≤ (n−1)/2} dy_{c′} y_{c′} / scale_{c′}.
    WITHIN_CHANNEL (Caffe builds it from Split, Power, AVE pooling, Power and Eltwise layers):
        scale = 1 + α · avg_{n×n}(x²), the average over the zero-padded n×n neighbourhood always
        dividing by n² (padding counts); k is ignored.
        Backward: dx = dy · scale^(−β) − (2αβ/n²) · x · Σ_{n×n} dy · x · scale^(−β−1).
    Params (lrn_param): local_size=5 (odd), alpha=1, beta=0.75, norm_region=ACROSS_CHANNELS
        (or WITHIN_CHANNEL), k=1, engine (no effect).
    Bottoms: x (N, C, H, W).
    Tops: y (N, C, H, W).
    In place: unsafe (backward reads the bottom data, as in Caffe).
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1
    supports_in_place = True  # unsafe for backward, as in Caffe (see In place above)
    shares_work = True

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.lrn_param
        if p.local_size % 2 != 1:
            raise self.error(f"LRN only supports odd values for local_size, got {p.local_size}")
        self.across = p.norm_region == ACROSS_CHANNELS
        self.scale: torch.Tensor | None = None  # k + α·window mean of x², kept for backward

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        require_4d(self, bottom[0])
        top[0].reshape_like(bottom[0])

    def _window_mean(self, t: torch.Tensor) -> torch.Tensor:
        """Mean over the zero-padded window (n channels, or n×n pixels); pads count. Any layout."""
        n = self.param.lrn_param.local_size
        pad = (n - 1) // 2
        if not self.across:
            return F.avg_pool2d(t, n, 1, pad)
        total = t.clone()  # shifted sums along C: vectorised in either layout
        for d in range(1, min(pad, t.shape[1] - 1) + 1):
            total[:, d:] += t[:, :-d]
            total[:, :-d] += t[:, d:]
        return total.div_(n)

    def _scale(self, x: torch.Tensor) -> torch.Tensor:
        p = self.param.lrn_param
        return self._window_mean(x * x).mul_(p.alpha).add_(p.k if self.across else 1.0)

    @staticmethod
    def _power(t: torch.Tensor, exponent: float) -> torch.Tensor:
        """t^exponent for t > 0, within a few ulp of std::pow. torch's pow has no vectorised kernel
        for a general exponent: exp(exponent · log t) is 2-3x faster, and 1/√(t·√t) for the usual
        β = 0.75 is faster still."""
        if exponent == -0.75:
            return torch.sqrt(t).mul_(t).rsqrt_()
        return torch.log(t).mul_(exponent).exp_()

    def _tiles(self, shape: Sequence[int], parts: int = 1) -> list[tuple[slice, ...]]:
        """Index tuples that cut (N, C, H, W) into pieces of about ``TILE`` elements: whole images,
        and, across channels (where a window never leaves its pixel), bands of rows. Each piece's
        dozen elementwise passes then run in cache instead of streaming the blob from memory.
        At least ``parts`` pieces where the shape allows (one per thread)."""
        n, c, h, w = shape
        images = min(max(1, TILE // max(1, c * h * w)), -(-n // parts))
        rows = h if images > 1 or not self.across else min(max(1, TILE // max(1, c * w)), -(-h // parts))
        return [(slice(i, i + images), slice(None), slice(r, r + rows))
                for i in range(0, n, images) for r in range(0, h, rows)]

    def forward(self, bottom: Blobs, top: Blobs, workers: Workers = SERIAL) -> None:
        x = bottom[0].strided_data()  # in the layout it is held in
        y = layout.output(top[0], x)
        self.scale = layout.reuse(self.scale, x) if self.need_backward else None
        tiles = self._tiles(x.shape, pieces.parts(workers, x.numel(), pieces.MIN_PIECE_VALUES))
        workers.run([functools.partial(self._forward_tile, x, y, tile) for tile in tiles])
        layout.store(top[0], y)

    def _forward_tile(self, x: torch.Tensor, y: torch.Tensor, tile: tuple[slice, ...]) -> None:
        scale = self._scale(x[tile])
        if self.scale is not None:
            self.scale[tile] = scale
        torch.mul(self._power(scale, -self.param.lrn_param.beta), x[tile], out=y[tile])

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        p, x, dy = self.param.lrn_param, bottom[0].strided_data(), top[0].strided_diff()
        dx = layout.output(bottom[0], x, diff=True)
        window_scale = self.from_forward(self.scale, "the window scales")
        for tile in self._tiles(x.shape):
            # The window sums are symmetric, so each is its own adjoint; scale^(−β−1) = scale^(−β) / scale.
            scale = window_scale[tile]
            factor = self._power(scale, -p.beta)
            ratio = self._window_mean((dy[tile] * x[tile]).mul_(factor).div_(scale))
            torch.sub(factor.mul_(dy[tile]), ratio.mul_(x[tile]), alpha=2.0 * p.alpha * p.beta, out=dx[tile])
        layout.store(bottom[0], dx, diff=True)
