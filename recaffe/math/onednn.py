"""Convolutions with their weights reordered once into oneDNN's own layout (deploy mode, CPU).

PyTorch's CPU convolution hands oneDNN plain (N, C, H, W)-shaped weights, and oneDNN reorders them
into its blocked layout at every call: for one image that reorder is 10–40 % of the convolution
(most in the small images of the last layers: ResNet-50's 512→2048 1×1 layer at 7×7, 40 %). Here
the weights are reordered once, for the input shape the kernel will see (``pack``), and the ReLU
after the convolution runs inside oneDNN's kernel, on values still in the core's cache
(``convolution``). The arithmetic is oneDNN's convolution either way; a step that uses a packed
kernel always does, so its outputs are the same from pass to pass.

The packed copy costs the convolution's weights a second time in memory, which deploy mode pays
only where the reorder weighs most: passes with fewer images than threads.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from recaffe.math.im2col import Geometry
from recaffe.math.pieces import relu_


def available(x_shape: Sequence[int], device: torch.device, g: Geometry, transposed: bool) -> bool:
    """Whether ``convolution`` can run this convolution of inputs of ``x_shape`` on ``device``: a
    2-D one on the CPU with oneDNN present, a geometry torch's kernels accept
    (``Geometry.torch_compatible``), not transposed."""
    return (not transposed and len(x_shape) == 4 and device.type == "cpu" and len(g.kernel) == 2
            and g.torch_compatible(x_shape[2:]) and torch.backends.mkldnn.is_available())


def pack(weight: torch.Tensor, g: Geometry, groups: int, x_shape: torch.Size) -> torch.Tensor:
    """``weight`` (Co, Ci/groups, kh, kw) in the layout oneDNN's kernel picks for inputs of
    ``x_shape`` (an opaque oneDNN tensor)."""
    plain = weight.detach().to_mkldnn()  # (from either layout, in one copy)
    return torch._C._nn.mkldnn_reorder_conv2d_weight(  # type: ignore[call-arg]  # (its stub lacks input_size)
        plain, list(g.pad), list(g.stride), list(g.dilation), groups, list(x_shape))


def convolution(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None, g: Geometry,
                groups: int, slope: float | None) -> torch.Tensor:
    """Caffe's Convolution of ``x`` (channels-last) with weights from ``pack``, then a ReLU of
    ``slope`` (None: none), fused into the kernel for a plain ReLU; channels-last."""
    fused = "relu" if slope == 0 else "none"
    y = torch.ops.mkldnn._convolution_pointwise(x, packed, bias, list(g.pad), list(g.stride),
                                                list(g.dilation), groups, fused, [], "")
    return y if slope == 0 else relu_(y, slope)
