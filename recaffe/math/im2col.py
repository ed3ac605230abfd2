"""Caffe's im2col / col2im for any number of spatial axes, and its convolution output sizes.

Column layout (``util/im2col.cpp``): row ``(c·k₀ + i₀)·k₁ + i₁ …`` holds input channel ``c`` at
kernel offset ``(i₀, i₁, …)``; the columns run over the output positions in row-major order.
Reads outside the input are zeros; col2im sums every column back onto its input position.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def trunc_div(a: int, b: int) -> int:
    """C++ integer division (rounds toward zero), as Caffe's size formulas use it."""
    return -(-a // b) if a < 0 else a // b


@dataclass(frozen=True)
class Geometry:
    """Kernel, stride, pad and dilation, one entry per spatial axis."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pad: tuple[int, ...]
    dilation: tuple[int, ...]

    @property
    def extent(self) -> tuple[int, ...]:
        """Dilated kernel size ``d·(k − 1) + 1`` per axis."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation))

    def conv_out(self, spatial: Sequence[int]) -> tuple[int, ...]:
        """``(in + 2p − extent) / s + 1`` with C's truncating division."""
        return tuple(trunc_div(n + 2 * p - e, s) + 1
                     for n, p, e, s in zip(spatial, self.pad, self.extent, self.stride))

    def deconv_out(self, spatial: Sequence[int]) -> tuple[int, ...]:
        """``s·(in − 1) + extent − 2p`` (no output padding)."""
        return tuple(s * (n - 1) + e - 2 * p
                     for n, p, e, s in zip(spatial, self.pad, self.extent, self.stride))

    def torch_compatible(self, spatial: Sequence[int]) -> bool:
        """True when torch's own kernels accept the geometry: every window fits the padded input
        and no dilation is 0 (Caffe accepts both)."""
        return all(self.dilation) and all(n + 2 * p >= e for n, p, e in zip(spatial, self.pad, self.extent))


def _window_index(
    spatial: Sequence[int], out: Sequence[int], g: Geometry, device: torch.device
) -> tuple[torch.Tensor, list[int], list[int]]:
    """Flat indices into the zero-padded input of every (kernel offset, output position).

    Returns ``index`` (Πk, Πout), the padded spatial shape, and the pads in F.pad order (last
    axis first; the far side is padded just enough for the last window).
    """
    padded = [n + p + max(0, (o - 1) * s + e - n - p)
              for n, o, p, s, e in zip(spatial, out, g.pad, g.stride, g.extent)]
    index = torch.zeros((), dtype=torch.long)
    nd = len(spatial)
    for i in range(nd):
        step = math.prod(padded[i + 1:])
        pos = (torch.arange(g.kernel[i])[:, None] * g.dilation[i]
               + torch.arange(out[i])[None, :] * g.stride[i]) * step  # (k_i, o_i)
        shape = [1] * (2 * nd)
        shape[i], shape[nd + i] = g.kernel[i], out[i]
        index = index + pos.view(shape)
    pads = []
    for n, p, total in reversed(list(zip(spatial, g.pad, padded))):
        pads += [p, total - n - p]
    return index.reshape(math.prod(g.kernel), math.prod(out)).to(device), padded, pads


def im2col_nd(x: torch.Tensor, g: Geometry) -> torch.Tensor:
    """(N, C, *spatial) → (N, C·Πk, *out) with ``out = g.conv_out(spatial)``."""
    n, c, spatial = x.shape[0], x.shape[1], x.shape[2:]
    out = g.conv_out(spatial)
    if len(spatial) == 2 and g.torch_compatible(spatial):
        cols = F.unfold(x, g.kernel, g.dilation, g.pad, g.stride)  # (N, C·K, L)
        return cols.view(n, -1, *out)
    index, _, pads = _window_index(spatial, out, g, x.device)
    flat = F.pad(x, pads).reshape(n, c, -1)
    return flat[:, :, index].reshape(n, -1, *out)


def col2im_nd(cols: torch.Tensor, spatial: Sequence[int], g: Geometry) -> torch.Tensor:
    """(N, C·Πk, *out) → (N, C, *spatial): the adjoint of im2col (overlaps are summed)."""
    n, out = cols.shape[0], cols.shape[2:]
    c = cols.shape[1] // math.prod(g.kernel)
    if len(spatial) == 2 and g.torch_compatible(spatial):
        return F.fold(cols.reshape(n, cols.shape[1], -1), tuple(spatial), g.kernel, g.dilation,
                      g.pad, g.stride)
    index, padded, pads = _window_index(spatial, out, g, cols.device)
    flat = cols.new_zeros(n, c, math.prod(padded))
    flat.index_add_(2, index.reshape(-1), cols.reshape(n, c, -1))
    return F.pad(flat.view(n, c, *padded), [-p for p in pads])
