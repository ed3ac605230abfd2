"""Convolutions on weights packed once into oneDNN's layout: the convolution's values, and where
they apply."""

from __future__ import annotations

import pytest
import torch

from recaffe.math import onednn
from recaffe.math.im2col import Geometry


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def geometry(kernel: int, stride: int = 1, pad: int = 0, dilation: int = 1) -> Geometry:
    return Geometry((kernel, kernel), (stride, stride), (pad, pad), (dilation, dilation))


@pytest.mark.parametrize(("images", "channels", "outputs", "g", "groups", "bias", "slope"), [
    (1, 16, 24, geometry(3, pad=1), 1, True, 0.0),  # the ReLU fused into the kernel
    (1, 3, 8, geometry(11, stride=4), 1, True, None),  # few input channels (a first layer)
    (2, 16, 32, geometry(5, pad=2), 2, False, 0.1),  # groups, no bias, a leaky ReLU
    (1, 32, 64, geometry(1), 1, True, 0.0),
    (1, 8, 8, geometry(3, pad=2, dilation=2), 8, True, None),  # depthwise, dilated
])
def test_values_match_the_convolution(images: int, channels: int, outputs: int, g: Geometry, groups: int,
                                      bias: bool, slope: float | None) -> None:
    x = randn(images, channels, 15, 13).contiguous(memory_format=torch.channels_last)
    w = randn(outputs, channels // groups, *g.kernel, seed=1) / (channels * g.kernel[0] ** 2 / groups) ** 0.5
    b = randn(outputs, seed=2) if bias else None
    expected = torch.nn.functional.conv2d(x.double(), w.double(), None if b is None else b.double(), g.stride,
                                          g.pad, g.dilation, groups)
    if slope is not None:
        expected = torch.where(expected > 0, expected, expected * slope)
    assert onednn.available(x.shape, x.device, g, transposed=False)
    y = onednn.convolution(x, onednn.pack(w, g, groups, x.shape), b, g, groups, slope)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y.double(), expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


def test_what_it_does_not_run() -> None:
    shape, cpu = (1, 4, 6, 6), torch.device("cpu")
    assert not onednn.available(shape, cpu, geometry(3), transposed=True)  # a Deconvolution
    assert not onednn.available((1, 4, 6), cpu, Geometry((3,), (1,), (0,), (1,)), transposed=False)
    assert not onednn.available(shape, cpu, geometry(9), transposed=False)  # a window past the padded input
    # Caffe accepts it, torch not:
    assert not onednn.available(shape, cpu, geometry(3, dilation=0), transposed=False)
