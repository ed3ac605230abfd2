"""Kernels whose work is cut into pieces that worker threads share (``recaffe.workers``; deploy mode).

* a convolution is cut by images when the batch has at least as many images as there are threads,
  each piece running oneDNN's kernel on one thread with the ReLU after it, copied into its place in
  the channels-last top; fewer images run as one kernel, on the calling thread's PyTorch threads
  (deploy mode runs such a step on all of them: ``workers.native``);
* an inner product is cut by output rows, each piece reading its rows of the weights once (a
  matrix-vector product for one row of input: the weights' bytes are the cost, and it streams them);
* an elementwise step (a sum of bottoms, a ReLU) is cut into ranges of its memory.

Work too small to be worth a hand-over (``MIN_PIECE_MACS``, ``MIN_PIECE_VALUES`` per piece) stays one
piece. With one thread (``workers.SERIAL``), or off the CPU, each is one piece: the plain kernel.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable

import torch
from torch import Tensor

from recaffe.math import layout
from recaffe.math.convolution import convolution as plain_convolution
from recaffe.math.im2col import Geometry
from recaffe.workers import Workers, split

# Below these sizes per piece, handing a piece to another thread costs more than it saves.
MIN_PIECE_MACS = 1 << 24  # multiply-adds of a convolution or inner product (~0.4 ms on one core)
MIN_PIECE_VALUES = 1 << 18  # elements of a memory-bound step (1 MB of float32)
Linear = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]  # (x, w, bias) -> y
MatVec = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor], bool]  # w, x, b, y

# Output rows per piece of an inner product are a multiple of this (oneDNN's vector blocks).
CHANNEL_BLOCK = 16


def parts(workers: Workers, work: int, minimum: int) -> int:
    """How many pieces to cut ``work`` into: one per thread, fewer when a piece would be too small."""
    return max(1, min(workers.count, work // minimum))


def linear_parts(workers: Workers, inputs: int, weights: int) -> int:
    """How many pieces an inner product of ``inputs`` rows over ``weights`` weights is cut into.
    One row of input: the weights' bytes are the cost, and a piece pays from ``MIN_PIECE_VALUES``
    of them; else its multiply-adds, from ``MIN_PIECE_MACS``."""
    if inputs == 1:
        return parts(workers, weights, MIN_PIECE_VALUES)
    return parts(workers, inputs * weights, MIN_PIECE_MACS)


def relu_(y: torch.Tensor, slope: float | None) -> torch.Tensor:
    """Caffe's ReLU in place (``slope``: its negative_slope; None: no ReLU)."""
    if slope == 0:
        y.clamp_(min=0)
    elif slope is not None:
        torch.where(y > 0, y, y * slope, out=y)
    return y


# ---------------------------------------------------------------------------------- convolution
def convolution(workers: Workers, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                g: Geometry, groups: int, slope: float | None) -> torch.Tensor:
    """Caffe's Convolution of ``x`` (then a ReLU of ``slope`` unless None), channels-last on the CPU."""
    out_hw = g.conv_out(x.shape[2:])
    n, out_channels = x.shape[0], weight.shape[0]
    macs = n * out_channels * math.prod(out_hw) * weight[0].numel()
    count = parts(workers, macs, MIN_PIECE_MACS)
    if count == 1 or n < count or not layout.use_channels_last(x) or not g.torch_compatible(x.shape[2:]):
        return relu_(plain_convolution(x, weight, bias, g, groups, False), slope)
    x = layout.to_channels_last(x)
    y = torch.empty((n, out_channels, *out_hw), dtype=x.dtype, device=x.device,
                    memory_format=torch.channels_last)
    workers.run([functools.partial(_conv_piece, x, weight, bias, g, groups, slope, y, slice(a, b))
                 for a, b in split(n, count)])
    return y


def _conv_piece(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, g: Geometry,
                groups: int, slope: float | None, y: torch.Tensor, images: slice) -> None:
    """``y[images]`` from ``x[images]``."""
    part = torch.convolution(layout.to_channels_last(x[images]), weight, bias, list(g.stride), list(g.pad),
                             list(g.dilation), False, [0, 0], groups)
    y[images].copy_(relu_(part, slope))


# -------------------------------------------------------------------------------- inner product
def inner_product(workers: Workers, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  y: torch.Tensor, linear: Linear | None = None, slope: float | None = None,
                  matvec: MatVec | None = None) -> None:
    """``y = x · weightᵀ + bias`` for x (M, K), weight (N, K), y (M, N), then the ReLU of ``slope``;
    ``linear(x, w, b)`` computes a piece where given (oneDNN's inner product), else a GEMM; for one
    row, ``matvec(w, x, b, y)`` where given and it takes the piece, else PyTorch's."""
    rows = weight.shape[0]
    count = linear_parts(workers, x.shape[0], weight.numel()) if weight.is_contiguous() else 1
    workers.run([functools.partial(_linear_piece, x, weight, bias, y, linear, matvec, slope, slice(a, b))
                 for a, b in split(rows, count, CHANNEL_BLOCK)])


def _linear_piece(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, y: torch.Tensor,
                  linear: Linear | None, matvec: MatVec | None, slope: float | None, rows: slice) -> None:
    w, b, out = weight[rows], None if bias is None else bias[rows], y[:, rows]
    if x.shape[0] == 1:  # one row: a matrix-vector product, which streams the weights fastest
        if matvec is not None and matvec(w, x[0], b, out[0]):
            pass
        elif b is not None:
            torch.addmv(b, w, x[0], out=out[0])
        else:
            torch.mv(w, x[0], out=out[0])
    elif linear is not None:
        out.copy_(linear(x, w, b))
    elif b is not None:
        torch.addmm(b, x, w.t(), out=out)
    else:
        torch.mm(x, w.t(), out=out)
    relu_(out, slope)


# ------------------------------------------------------------------------------------ per image
def per_image(workers: Workers, x: torch.Tensor, shape: tuple[int, ...],
              kernel: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``kernel(x)`` for a kernel that treats each image (row of axis 0) alone, giving ``shape``:
    computed a few images at a time on each thread, in ``x``'s preferred layout."""
    count = min(x.shape[0], parts(workers, x.numel(), MIN_PIECE_VALUES))
    if count == 1:
        return kernel(x)
    channels_last = layout.preferred_layout_is_channels_last(x) and len(shape) == 4
    y = torch.empty(shape, dtype=x.dtype, device=x.device,
                    memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    workers.run([functools.partial(_image_piece, kernel, x, y, slice(a, b))
                 for a, b in split(x.shape[0], count)])
    return y


def _image_piece(kernel: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                 images: slice) -> None:
    y[images].copy_(kernel(x[images]))


def concatenate(workers: Workers, xs: list[torch.Tensor], axis: int) -> torch.Tensor:
    """``torch.cat(xs, axis)``, channels-last for channels-last 4-D tensors: each thread copies some
    of them into their places."""
    last = all(x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) for x in xs)
    if not last or parts(workers, sum(x.numel() for x in xs), MIN_PIECE_VALUES) == 1:
        return torch.cat(xs, dim=axis)
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    y = torch.empty(shape, dtype=xs[0].dtype, device=xs[0].device, memory_format=torch.channels_last)
    starts = itertools.accumulate((x.shape[axis] for x in xs), initial=0)
    workers.run([functools.partial(Tensor.copy_, y.narrow(axis, start, x.shape[axis]), x)
                 for start, x in zip(starts, xs)])
    return y


# ---------------------------------------------------------------------------------- elementwise
def flat(t: torch.Tensor) -> torch.Tensor | None:
    """A 1-D view of ``t``'s elements in memory order (row-major or channels-last); None otherwise."""
    if t.is_contiguous():
        return t.view(-1)
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last):
        return t.permute(0, 2, 3, 1).reshape(-1)  # a view: the permuted tensor is contiguous
    return None


def sum_(workers: Workers, y: torch.Tensor, bottoms: list[torch.Tensor], slope: float | None) -> None:
    """``y = Σ bottoms`` then the ReLU of ``slope``, for tensors of one shape; cut into ranges of
    memory when all share ``y``'s layout."""
    views = [flat(t) for t in (y, *bottoms)]
    same = all(v is not None for v in views) and all(t.stride() == y.stride() for t in bottoms)
    count = parts(workers, y.numel(), MIN_PIECE_VALUES) if same else 1
    if count == 1:
        _sum_piece(y, bottoms, slope)
        return
    ranges = [slice(a, b) for a, b in split(y.numel(), count, 1024)]
    workers.run([functools.partial(_sum_piece, views[0][r], [v[r] for v in views[1:]], slope)  # type: ignore[index]
                 for r in ranges])


def _sum_piece(y: torch.Tensor, bottoms: list[torch.Tensor], slope: float | None) -> None:
    torch.add(bottoms[0], bottoms[1], out=y)
    for other in bottoms[2:]:
        y.add_(other)
    relu_(y, slope)
