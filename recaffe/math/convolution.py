"""Caffe's convolution and its transpose (deconvolution), forward and backward, for any N-D.

Inputs are (N, C, *spatial). Weights are (C_out, C_in/g, *k) for convolution and
(C_in, C_out/g, *k) for the transposed form, as in Caffe and torch. With 1 to 3 spatial axes and
windows that fit the padded input, torch's native kernels run; otherwise (0 or > 3 spatial axes,
Caffe's truncated output size where the last window overhangs the padding, or dilation 0) the same
arithmetic runs as im2col + batched matmul.
"""

from __future__ import annotations

import torch

from recaffe.math.im2col import Geometry, col2im_nd, im2col_nd

Grads = tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]


def _native(spatial: torch.Size, g: Geometry, transposed: bool) -> bool:
    # A transposed convolution's windows always fit its (larger) output.
    return 1 <= len(spatial) <= 3 and (all(g.dilation) if transposed else g.torch_compatible(spatial))


def _aten_args(g: Geometry, transposed: bool, groups: int) -> tuple:
    return list(g.stride), list(g.pad), list(g.dilation), transposed, [0] * len(g.kernel), groups


def _grouped(weight: torch.Tensor, groups: int) -> torch.Tensor:
    return weight.reshape(groups, weight.shape[0] // groups, -1)  # (g, Co/g, Ci/g·K)


def _conv_cols(x: torch.Tensor, weight: torch.Tensor, g: Geometry, groups: int) -> torch.Tensor:
    """Convolution as W · im2col(x): (N, Ci, *S) → (N, Co, *out)."""
    cols = im2col_nd(x, g)  # (N, Ci·K, *out)
    w = _grouped(weight, groups)
    y = w @ cols.reshape(x.shape[0], groups, w.shape[2], -1)  # (N, g, Co/g, L)
    return y.reshape(x.shape[0], weight.shape[0], *cols.shape[2:])


def _conv_data_grad(dy: torch.Tensor, weight: torch.Tensor, spatial: tuple[int, ...], g: Geometry,
                    groups: int) -> torch.Tensor:
    """The adjoint of ``_conv_cols`` in x: col2im(Wᵀ · dy), (N, Co, *out) → (N, Ci, *spatial)."""
    w = _grouped(weight, groups)
    cols = w.transpose(1, 2) @ dy.reshape(dy.shape[0], groups, w.shape[1], -1)  # (N, g, Ci/g·K, L)
    return col2im_nd(cols.reshape(dy.shape[0], -1, *dy.shape[2:]), spatial, g)


def _conv_weight_grad(x: torch.Tensor, dy: torch.Tensor, weight: torch.Tensor, g: Geometry,
                      groups: int) -> torch.Tensor:
    """Σ_n dy · im2col(x)ᵀ, shaped like ``weight``."""
    n = x.shape[0]
    cols = im2col_nd(x, g).reshape(n, groups * weight[0].numel(), -1)  # (N, Ci·K, L)
    cols = cols.reshape(n, groups, -1, cols.shape[2])  # (N, g, Ci/g·K, L)
    grad = dy.reshape(n, groups, -1, cols.shape[3]) @ cols.transpose(2, 3)  # (N, g, Co/g, Ci/g·K)
    return grad.sum(0).reshape(weight.shape)


def convolution(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, g: Geometry,
                groups: int, transposed: bool) -> torch.Tensor:
    """Caffe's Convolution (or, ``transposed``, Deconvolution) forward."""
    if _native(x.shape[2:], g, transposed):
        return torch.convolution(x, weight, bias, *_aten_args(g, transposed, groups))
    if transposed:
        y = _conv_data_grad(x, weight, g.deconv_out(x.shape[2:]), g, groups)
    else:
        y = _conv_cols(x, weight, g, groups)
    if bias is not None:
        y += bias.view(1, -1, *[1] * len(g.kernel))
    return y


def convolution_backward(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, g: Geometry,
                         groups: int, transposed: bool, mask: tuple[bool, bool, bool]) -> Grads:
    """Gradients (bottom, weight, bias) of ``convolution``; an entry is None when ``mask`` is off."""
    if _native(x.shape[2:], g, transposed):
        bias_sizes = [dy.shape[1]] if mask[2] else None
        dx, dw, db = torch.ops.aten.convolution_backward(
            dy, x, weight, bias_sizes, *_aten_args(g, transposed, groups), list(mask))
        return dx, dw, db
    dx = dw = db = None
    if mask[0]:
        dx = (_conv_cols(dy, weight, g, groups) if transposed
              else _conv_data_grad(dy, weight, tuple(x.shape[2:]), g, groups))
    if mask[1]:
        # The convolution's input is the deconvolution's top.
        dw = (_conv_weight_grad(dy, x, weight, g, groups) if transposed
              else _conv_weight_grad(x, dy, weight, g, groups))
    if mask[2]:
        db = dy.sum([0, *range(2, dy.dim())])
    return dx, dw, db
