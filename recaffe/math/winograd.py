"""Winograd's minimal filtering for 3×3 convolutions (deploy mode, CPU): F(m×m, 3×3).

A 3×3 convolution of stride 1 computes each m×m block of output pixels from an (m+2)×(m+2) tile
of input. Winograd's algorithm (Lavin & Gray 2016, "Fast Algorithms for Convolutional Neural
Networks") maps tile d and kernel g into a transform domain where the convolution is a pointwise
product, summed over input channels:

    Y = Aᵀ [ Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B) ] A

For all tiles at once, with n = m + 2 and T tiles:

* input transform  V = (Bᵀ ⊗ Bᵀ) · D, D the tiles as an (n², T·C) matrix;
* products         M[f] = V[f] · U[f] for each of the n² frequencies f, U[f] a (C, K) matrix
                   of the transformed kernels (computed once per weight, in double precision);
* output transform Y = (Aᵀ ⊗ Aᵀ) · M, giving the m² pixels of each tile for each output channel.

The products take 9·m²/n² of the direct convolution's multiply-adds: 4/9 for m = 2, 1/4 for m = 4.
The matrices come from interpolation points: {0, 1, −1} and ∞ for m = 2; {0, 1, −1, 2, −½} and ∞
for m = 4, whose rounding error is about that of the direct kernel (1.5–2e-6 of the output's scale
in float32, against 4–8e-6 for the usual {0, ±1, ±2}; Barabasz et al. 2020, "Error analysis and
improving the accuracy of Winograd convolution"). They are built exactly (fractions) by the
Toom-Cook construction and checked to give the convolution exactly before use.

Which m a layer uses (``tile_size``) depends only on its shapes, so the outputs are the same from
run to run. The work is cut into pieces of a few rows of tiles, each taken through the three
stages at once, that the threads share (``recaffe.workers``). Where ``recaffe.math.compiled``'s
kernels are built, the two transforms run there, reading the tiles from the input and writing the
pixels into the output directly; deploy mode then hands a single image's pieces to the threads
when each gets ``SHARED_TILES`` tiles, else it runs them one after another, the products on
PyTorch's own threads (``workers.native``), as it does without the compiled kernels.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction

import torch

from recaffe.math import compiled
from recaffe.math.pieces import relu_
from recaffe.workers import Workers

_POINTS: dict[int, tuple[Fraction, ...]] = {
    2: (Fraction(0), Fraction(1), Fraction(-1)),
    4: (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-1, 2)),
}
KERNEL = 3
# Output size per image (its smaller side) from which each tile size pays, and the fewest input and
# output channels for which the transforms cost less than they save (measured on one core).
M4_FROM = 24
M2_FROM = 10
MIN_CHANNELS = 32
MIN_CHANNEL_PAIRS = 64 * 128  # (64→64 at 56×56 gains nothing: the transforms cost what the products save)
M2_MIN_CHANNELS = 128
TILES_PER_PIECE = 96  # tiles a piece takes through all three stages (fewer when a row has more)
KERNEL_BLOCK = 32  # output channels whose transformed kernels are computed at once
# Tiles a piece needs for the threads to share one image's convolution as pieces (with compiled
# transforms): with fewer, its products are too small and PyTorch's threads do better.
SHARED_TILES = 48


@dataclass(frozen=True)
class Transform:
    """The matrices of F(m×m, 3×3), n = m + 2: Bᵀ (n, n), G (n, 3) and Aᵀ (m, n) in float64, and
    the 2-D transforms the kernels apply, ``input`` = Bᵀ ⊗ Bᵀ (n², n²) and ``output`` = Aᵀ ⊗ Aᵀ
    (m², n²), in float32."""

    m: int
    b_t: torch.Tensor
    g: torch.Tensor
    a_t: torch.Tensor
    input: torch.Tensor
    output: torch.Tensor

    @property
    def n(self) -> int:
        return self.m + KERNEL - 1

    @functools.cached_property
    def b_t32(self) -> torch.Tensor:
        """Bᵀ in float32 (its entries are exact there)."""
        return self.b_t.float().contiguous()

    @functools.cached_property
    def a_t32(self) -> torch.Tensor:
        """Aᵀ in float32 (its entries are exact there)."""
        return self.a_t.float().contiguous()


def _polynomial(roots: list[Fraction]) -> list[Fraction]:
    """Coefficients (lowest power first) of Π (x − root)."""
    coefficients = [Fraction(1)]
    for root in roots:
        coefficients = [Fraction(0), *coefficients]
        for i in range(len(coefficients) - 1):
            coefficients[i] -= root * coefficients[i + 1]
    return coefficients


@functools.cache
def transform(m: int) -> Transform:
    """F(m×m, 3×3) from ``_POINTS[m]`` and the point at infinity, checked exactly."""
    points, n = _POINTS[m], m + KERNEL - 1
    a_t = [[p ** i for p in points] + [Fraction(int(i == m - 1))] for i in range(m)]
    g, b_t = [], []
    for p in points:
        others = [q for q in points if q != p]
        denominator = Fraction(1)
        for q in others:
            denominator *= p - q
        g.append([p ** k / denominator for k in range(KERNEL)])
        b_t.append([*_polynomial(others), Fraction(0)])
    g.append([Fraction(int(k == KERNEL - 1)) for k in range(KERNEL)])
    b_t.append(_polynomial(list(points)))
    for i in range(m):  # Σ_j Aᵀ[i, j] G[j, k] Bᵀ[j, t] must be 1 where t = i + k, else 0
        for k in range(KERNEL):
            for t in range(n):
                if sum(a_t[i][j] * g[j][k] * b_t[j][t] for j in range(n)) != int(t == i + k):
                    raise ArithmeticError(f"F({m}, 3) from points {points} is not a convolution")
    b_t64, g64, a_t64 = (torch.tensor([[float(v) for v in row] for row in rows], dtype=torch.float64)
                         for rows in (b_t, g, a_t))
    return Transform(m, b_t64, g64, a_t64, torch.kron(b_t64, b_t64).float(), torch.kron(a_t64, a_t64).float())


def tile_size(x_shape: torch.Size | tuple[int, ...], weight_shape: torch.Size | tuple[int, ...],
              stride: tuple[int, ...], pad: tuple[int, ...], dilation: tuple[int, ...],
              groups: int) -> int | None:
    """The m of F(m×m, 3×3) for this convolution, or None where the direct kernel is used: 2-D,
    3×3, stride and dilation 1, one group, at least ``MIN_CHANNELS`` in and out and
    ``MIN_CHANNEL_PAIRS`` (input, output) pairs of them, and an output of
    at least ``M4_FROM`` pixels a side for m = 4, or ``M2_FROM`` for m = 2 (on smaller images the
    transforms cost more than they save), and for a single image ``M2_MIN_CHANNELS`` in and out
    (its few tiles make small products)."""
    if (len(x_shape) != 4 or tuple(weight_shape[2:]) != (KERNEL, KERNEL) or groups != 1
            or any(s != 1 for s in stride) or any(d != 1 for d in dilation)
            or any(p > KERNEL - 1 for p in pad)
            or min(weight_shape[0], weight_shape[1]) < MIN_CHANNELS
            or weight_shape[0] * weight_shape[1] < MIN_CHANNEL_PAIRS):
        return None
    side = min(size + 2 * p - (KERNEL - 1) for size, p in zip(x_shape[2:], pad))
    if side >= M4_FROM:
        return 4
    few = x_shape[0] == 1 and min(weight_shape[0], weight_shape[1]) < M2_MIN_CHANNELS
    return 2 if side >= M2_FROM and not few else None


def shares_well(x_shape: tuple[int, ...], m: int, threads: int) -> bool:
    """Whether one image of ``x_shape`` (a 3×3 convolution padded to keep its size, or less) has
    ``SHARED_TILES`` tiles of F(m×m, 3×3) for each of ``threads`` pieces."""
    tiles = -(-x_shape[2] // m) * -(-x_shape[3] // m)
    return tiles >= SHARED_TILES * threads


def kernels(weight: torch.Tensor, m: int) -> torch.Tensor:
    """U = G g Gᵀ for every (output, input) channel pair: (n², C, K) float32, computed in double
    a block of ``KERNEL_BLOCK`` output channels at a time (the double copies of a whole layer's
    weights would raise the peak memory of a net's first pass by several times them)."""
    g = transform(m).g
    out_channels, in_channels = weight.shape[:2]
    u = torch.empty((transform(m).n ** 2, in_channels, out_channels), dtype=weight.dtype)
    for first in range(0, out_channels, KERNEL_BLOCK):
        block = weight[first:first + KERNEL_BLOCK].double().cpu()
        values = torch.einsum("ik,ockl,jl->ijco", g, block, g)
        u[:, :, first:first + block.shape[0]] = values.reshape(-1, in_channels, block.shape[0])
    return u


def convolution(workers: Workers, x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None,
                pad: tuple[int, ...], m: int, slope: float | None) -> torch.Tensor:
    """The 3×3, stride-1 convolution of ``x`` (N, C, H, W) with transformed kernels ``u``
    (``kernels``), plus ``bias``, then a ReLU of ``slope`` unless None; channels-last (N, K, Ho, Wo).

    The tiles go through the three stages a few rows of tiles at a time (``TILES_PER_PIECE``), so
    that a piece's transformed tiles stay in the core's cache from one stage to the next."""
    t = transform(m)
    images, channels, height, width = x.shape
    out_h, out_w = height + 2 * pad[0] - (KERNEL - 1), width + 2 * pad[1] - (KERNEL - 1)
    rows, cols = -(-out_h // m), -(-out_w // m)  # tiles down and across
    pieces = -(-rows // max(1, TILES_PER_PIECE // cols))  # per image, for the cache's sake
    if images < workers.count:  # as many for each thread
        pieces = min(rows, -(-pieces // workers.count) * workers.count)
    step = -(-rows // pieces)  # rows of tiles per piece
    if compiled.load() is not None and x.dtype == torch.float32 and x.device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
        y = torch.empty((images, u.shape[2], out_h, out_w), dtype=x.dtype, memory_format=torch.channels_last)
        workers.run([functools.partial(_compiled_piece, t, x[image], pad, u, bias, slope, y[image], first,
                                       min(rows, first + step), cols)
                     for image in range(images) for first in range(0, rows, step)])
        return y
    y = torch.empty((images, u.shape[2], rows * m, cols * m), dtype=x.dtype,
                    memory_format=torch.channels_last)
    pixels = x.permute(0, 2, 3, 1)  # (N, H, W, C): a view of channels-last memory
    jobs = [functools.partial(_piece, t, pixels, pad, u, bias, slope, y, image, first,
                              min(rows, first + step))
            for image in range(images) for first in range(0, rows, step)]
    workers.run(jobs)
    if out_h == rows * m and out_w == cols * m:  # exact: no tile past the edge
        return y
    return y[:, :, :out_h, :out_w].contiguous(memory_format=torch.channels_last)


def _compiled_piece(t: Transform, x: torch.Tensor, pad: tuple[int, ...], u: torch.Tensor,
                    bias: torch.Tensor | None, slope: float | None, y: torch.Tensor, first: int, last: int,
                    cols: int) -> None:
    """``_piece`` with both transforms in ``recaffe.math.compiled``'s kernels, which read the tiles
    straight from ``x`` (C, H, W) and write the pixels straight into ``y`` (K, Ho, Wo), both in
    channels-last memory: no padded copy, no output larger than ``y``."""
    v = x.new_empty((t.n * t.n, (last - first) * cols, x.shape[0]))
    compiled.winograd_input(x, v, t.b_t32, t.m, pad, first, last, cols)
    compiled.winograd_output(torch.bmm(v, u), y, t.a_t32, bias, slope, first, last, cols)


def _piece(t: Transform, pixels: torch.Tensor, pad: tuple[int, ...], u: torch.Tensor,
           bias: torch.Tensor | None, slope: float | None, y: torch.Tensor, image: int, first: int,
           last: int) -> None:
    """Output rows of tiles ``first..last`` of one image: transform the input tiles, multiply them
    with the kernels for each frequency, transform the products back into ``y``'s pixels."""
    m, n = t.m, t.n
    cols, channels, out_channels = y.shape[3] // m, pixels.shape[3], y.shape[1]
    tiles = (last - first) * cols
    # the input rows these tiles cover, zero-padded (a piece's own copy: no padded copy of the batch)
    top, height, width = first * m - pad[0], pixels.shape[1], pixels.shape[2]
    source = pixels.new_zeros(((last - first) * m + KERNEL - 1, cols * m + KERNEL - 1, channels))
    rows = slice(max(0, top), min(height, top + source.shape[0]))
    source[rows.start - top:rows.stop - top, pad[1]:pad[1] + width].copy_(pixels[image, rows])
    row_stride = source.stride(0)
    # (n, n, rows', cols, C): pixel (i, j) of each tile for every channel, a view of ``source``
    d = source.as_strided((n, n, last - first, cols, channels),
                          (row_stride, channels, m * row_stride, m * channels, 1))
    v = t.input @ d.reshape(n * n, tiles * channels)  # (n², T'·C)
    products = torch.bmm(v.view(n * n, tiles, channels), u)  # (n², T', K)
    outputs = t.output @ products.view(n * n, -1)  # (m², T'·K)
    # (m, m, rows', cols, K) → the (rows', m, cols, m, K) view of these rows of y's memory
    values = outputs.view(m, m, last - first, cols, out_channels).permute(2, 0, 3, 1, 4)
    target = y[image].permute(1, 2, 0)[first * m:last * m].view(last - first, m, cols, m, out_channels)
    if bias is not None:
        torch.add(values, bias, out=target)
    else:
        target.copy_(values)
    relu_(target, slope)
