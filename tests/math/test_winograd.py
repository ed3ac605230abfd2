"""Winograd's F(m×m, 3×3): exact matrices, the convolution's values, and which layers use it."""

from __future__ import annotations

import pytest
import torch

from recaffe.math import winograd
from recaffe.workers import SERIAL, Workers

THREE = Workers(3)


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def reference(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, pad: tuple[int, int],
              slope: float | None) -> torch.Tensor:
    y = torch.nn.functional.conv2d(x.double(), w.double(), None if b is None else b.double(), padding=pad)
    return y if slope is None else torch.where(y > 0, y, y * slope)


@pytest.mark.parametrize("m", [2, 4])
def test_the_matrices_give_a_one_dimensional_convolution(m: int) -> None:
    """Aᵀ[(G g) ⊙ (Bᵀ d)] is the correlation of d (m + 2 values) with g (3 values); the 2-D
    transforms are the Kronecker squares."""
    t = winograd.transform(m)
    d, g = randn(t.n).double(), randn(3, seed=1).double()
    expected = torch.stack([sum(g[k] * d[i + k] for k in range(3)) for i in range(m)])
    torch.testing.assert_close(t.a_t @ ((t.g @ g) * (t.b_t @ d)), expected, rtol=1e-12, atol=1e-12)
    assert torch.equal(t.input, torch.kron(t.b_t, t.b_t).float())
    assert torch.equal(t.output, torch.kron(t.a_t, t.a_t).float())


def test_a_construction_that_is_not_a_convolution_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real = winograd._polynomial
    monkeypatch.setattr(winograd, "_polynomial", lambda roots: [2 * c for c in real(roots)])
    winograd.transform.cache_clear()
    try:
        with pytest.raises(ArithmeticError, match=r"F\(4, 3\) from points"):
            winograd.transform(4)
    finally:
        winograd.transform.cache_clear()


@pytest.mark.parametrize(("m", "images", "size", "pad", "bias", "slope"), [
    (4, 1, (24, 24), (1, 1), True, 0.0),  # whole tiles
    (4, 2, (13, 17), (1, 1), True, None),  # tiles past the edge, cropped
    (4, 1, (30, 26), (0, 2), False, 0.1),  # other pads, no bias, a leaky ReLU
    (2, 3, (14, 14), (1, 1), True, 0.0),
    (2, 1, (11, 9), (2, 0), False, None),
])
def test_values_match_the_convolution(m: int, images: int, size: tuple[int, int], pad: tuple[int, int],
                                      bias: bool, slope: float | None) -> None:
    """Within the direct kernel's own rounding (a few 1e-6 of the output's scale), channels-last,
    and the same values whatever the number of threads taking the pieces."""
    x = randn(images, 40, *size).contiguous(memory_format=torch.channels_last)
    w, b = randn(48, 40, 3, 3, seed=1) / 60**0.5, randn(48, seed=2) if bias else None
    expected = reference(x, w, b, pad, slope)
    u = winograd.kernels(w, m)
    y = winograd.convolution(SERIAL, x, u, b, pad, m, slope)
    assert y.shape == expected.shape and y.is_contiguous(memory_format=torch.channels_last)
    scale = float(expected.abs().max())
    torch.testing.assert_close(y.double(), expected, rtol=0, atol=4e-6 * scale)
    shared = winograd.convolution(THREE, x, u, b, pad, m, slope)
    torch.testing.assert_close(shared.double(), expected, rtol=0, atol=4e-6 * scale)
    assert torch.equal(winograd.convolution(THREE, x, u, b, pad, m, slope), shared)  # the same every time


def test_a_row_major_bottom_gives_the_same_values() -> None:
    x, w = randn(1, 32, 28, 28), randn(32, 32, 3, 3, seed=1)
    u = winograd.kernels(w, 4)
    assert torch.equal(winograd.convolution(SERIAL, x, u, None, (1, 1), 4, None),
                       winograd.convolution(SERIAL, x.contiguous(memory_format=torch.channels_last), u, None,
                                            (1, 1), 4, None))


@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "pad", "dilation", "groups", "m"), [
    ((1, 64, 56, 56), (192, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1, 4),
    ((10, 128, 28, 28), (128, 128, 3, 3), (1, 1), (1, 1), (1, 1), 1, 4),
    ((1, 256, 14, 14), (256, 256, 3, 3), (1, 1), (1, 1), (1, 1), 1, 2),
    ((1, 256, 13, 13), (384, 256, 3, 3), (1, 1), (1, 1), (1, 1), 1, 2),  # CaffeNet's conv3
    ((1, 96, 14, 14), (208, 96, 3, 3), (1, 1), (1, 1), (1, 1), 1, None),  # one image: too few channels
    ((2, 96, 14, 14), (208, 96, 3, 3), (1, 1), (1, 1), (1, 1), 1, 2),  # two: enough tiles
    ((1, 512, 7, 7), (512, 512, 3, 3), (1, 1), (1, 1), (1, 1), 1, None),  # too small an image
    ((1, 16, 56, 56), (32, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1, None),  # too few channels
    ((10, 64, 56, 56), (64, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1, None),  # too few channel pairs
    ((1, 64, 56, 56), (128, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1, 4),
    ((1, 128, 56, 56), (128, 128, 3, 3), (2, 2), (1, 1), (1, 1), 1, None),  # strided
    ((1, 128, 56, 56), (128, 128, 3, 3), (1, 1), (2, 2), (2, 2), 1, None),  # dilated
    ((1, 128, 56, 56), (128, 64, 3, 3), (1, 1), (1, 1), (1, 1), 2, None),  # grouped
    ((1, 128, 56, 56), (128, 128, 5, 5), (1, 1), (2, 2), (1, 1), 1, None),  # 5×5
    ((1, 128, 56, 56), (128, 128, 3, 3), (1, 1), (3, 3), (1, 1), 1, None),  # a pad past the kernel
    ((1, 128, 56, 56, 4), (128, 128, 3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1, None),  # 3-D
])
def test_which_convolutions_use_it(x_shape: tuple[int, ...], w_shape: tuple[int, ...],
                                   stride: tuple[int, ...], pad: tuple[int, ...], dilation: tuple[int, ...],
                                   groups: int, m: int | None) -> None:
    assert winograd.tile_size(x_shape, w_shape, stride, pad, dilation, groups) == m
