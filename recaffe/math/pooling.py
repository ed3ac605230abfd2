"""Caffe's 2-D pooling windows (``pooling_layer.cpp``): output size, MAX, AVE and STOCHASTIC.

A window ``(ph, pw)`` starts at ``ph·stride − pad`` and is clipped to the image. torch's pooling
kernels share Caffe's arithmetic wherever they accept the configuration (``pad ≤ kernel/2`` and
the same output size); elsewhere the input is padded explicitly to hold exactly the windows
Caffe visits, and the same torch kernels run without implicit padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

FLT_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class PoolWindow:
    """Kernel, stride and pad as (h, w) pairs, and the rounding of the output size."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int]
    ceil_mode: bool = True

    def output_shape(self, in_hw: tuple[int, int]) -> tuple[int, int]:
        """Caffe's pooled size: float ceil/floor, then, when any pad is set, the last window is
        dropped if it would start in the padding."""
        clip = any(self.pad)
        return tuple(self._size(n, k, s, p, clip)  # type: ignore[return-value]
                     for n, k, s, p in zip(in_hw, self.kernel, self.stride, self.pad))

    def _size(self, n: int, k: int, s: int, p: int, clip: bool) -> int:
        ratio = float(np.float32(n + 2 * p - k) / np.float32(s))
        out = (math.ceil(ratio) if self.ceil_mode else math.floor(ratio)) + 1
        return out - 1 if clip and (out - 1) * s >= n + p else out

    def native(self, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> bool:
        """True when torch's implicit padding and output size give Caffe's windows."""
        for n, o, k, s, p in zip(in_hw, out_hw, self.kernel, self.stride, self.pad):
            torch_out = (n + 2 * p - k + (s - 1 if self.ceil_mode else 0)) // s + 1
            if self.ceil_mode and (torch_out - 1) * s >= n + p:
                torch_out -= 1
            if p > k // 2 or n + 2 * p < k or torch_out != o:
                return False
        return True

    def explicit_pads(self, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> list[int]:
        """F.pad amounts (w then h) that hold exactly the visited windows (negative crops)."""
        pads: list[int] = []
        for n, o, k, s, p in reversed(list(zip(in_hw, out_hw, self.kernel, self.stride, self.pad))):
            pads += [p, (o - 1) * s + k - n - p]
        return pads


def max_pool(x: torch.Tensor, w: PoolWindow, out_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """MAX pooling of (N, C, H, W): the top and the argmax as a flat index ``h·W + w``.

    The first maximum wins (strict >, from −FLT_MAX); a window with nothing above −FLT_MAX gives
    −FLT_MAX and index −1, as in Caffe.
    """
    in_hw = (x.shape[2], x.shape[3])
    if w.native(in_hw, out_hw):
        top, index = F.max_pool2d(x, w.kernel, w.stride, w.pad, ceil_mode=w.ceil_mode, return_indices=True)
    else:
        pads = w.explicit_pads(in_hw, out_hw)
        top, index = F.max_pool2d(F.pad(x, pads, value=-math.inf), w.kernel, w.stride, return_indices=True)
        width = x.shape[3] + pads[0] + pads[1]
        index = (index // width - pads[2]) * x.shape[3] + index % width - pads[0]
    found = top > -FLT_MAX
    return top.where(found, -FLT_MAX), index.where(found, -1)


def _divisor(n: int, o: int, k: int, s: int, p: int, like: torch.Tensor) -> torch.Tensor:
    """Caffe's AVE pool sizes along one axis: the window clipped to ``n + pad``, before clipping to
    the image, so padding cells inside ``n + pad`` count."""
    start = torch.arange(o, dtype=like.dtype, device=like.device) * s - p
    return (start + k).clamp(max=n + p) - start


def _ave_divisor(
    w: PoolWindow, in_hw: tuple[int, int], out_hw: tuple[int, int], like: torch.Tensor
) -> torch.Tensor:
    dh, dw = (_divisor(*args, like) for args in zip(in_hw, out_hw, w.kernel, w.stride, w.pad))
    return dh[:, None] * dw[None, :]  # (PH, PW)


def ave_pool(x: torch.Tensor, w: PoolWindow, out_hw: tuple[int, int]) -> torch.Tensor:
    """AVE pooling of (N, C, H, W): the clipped window's sum over Caffe's pool size."""
    in_hw = (x.shape[2], x.shape[3])
    if w.native(in_hw, out_hw):
        return F.avg_pool2d(x, w.kernel, w.stride, w.pad, ceil_mode=w.ceil_mode, count_include_pad=True)
    padded = F.pad(x, w.explicit_pads(in_hw, out_hw))
    sums = F.avg_pool2d(padded, w.kernel, w.stride, divisor_override=1)
    return sums / _ave_divisor(w, in_hw, out_hw, x)


def ave_pool_backward(dy: torch.Tensor, w: PoolWindow, in_hw: tuple[int, int]) -> torch.Tensor:
    """The adjoint of ``ave_pool``: each top diff spread evenly over its clipped window, / pool size."""
    n, c, out_hw = dy.shape[0], dy.shape[1], (dy.shape[2], dy.shape[3])
    if w.native(in_hw, out_hw):
        return torch.ops.aten.avg_pool2d_backward(
            dy, dy.new_empty(n, c, *in_hw), list(w.kernel), list(w.stride), list(w.pad),
            w.ceil_mode, True, None)
    pads = w.explicit_pads(in_hw, out_hw)
    padded = dy.new_empty(n, c, in_hw[0] + pads[2] + pads[3], in_hw[1] + pads[0] + pads[1])
    grad = torch.ops.aten.avg_pool2d_backward(
        dy / _ave_divisor(w, in_hw, out_hw, dy), padded, list(w.kernel), list(w.stride), [0, 0],
        False, True, 1)
    return F.pad(grad, [-p for p in pads])


def _windows(x: torch.Tensor, w: PoolWindow, out_hw: tuple[int, int]) -> torch.Tensor:
    """(N, C, PH, PW, kh·kw): each window in row-major order, zeros past the image edge."""
    padded = F.pad(x, w.explicit_pads((x.shape[2], x.shape[3]), out_hw))
    patches = padded.unfold(2, w.kernel[0], w.stride[0]).unfold(3, w.kernel[1], w.stride[1])
    return patches.reshape(*patches.shape[:4], -1)


def stochastic_pool(x: torch.Tensor, w: PoolWindow, out_hw: tuple[int, int],
                    uniform: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """STOCHASTIC pooling (no padding; Caffe's GPU kernels).

    With ``uniform`` (N, C, PH, PW) draws u in [0, 1) (TRAIN): the first window element whose
    running sum reaches ``u · Σwindow`` is picked; returns it and its flat index ``h·W + w``.
    Without (TEST): ``Σx² / Σx`` per window (0 where ``Σx <= 0``), and no index.
    """
    win = _windows(x, w, out_hw)
    total = win.sum(-1)
    if uniform is None:
        return torch.where(total > 0, (win * win).sum(-1) / total, 0.0), None
    pick = (win.cumsum(-1) >= (uniform * total).unsqueeze(-1)).int().argmax(-1, keepdim=True)
    top = win.gather(-1, pick).squeeze(-1)
    pick = pick.squeeze(-1)
    rows = torch.arange(out_hw[0], device=x.device)[:, None] * w.stride[0] + pick // w.kernel[1]
    cols = torch.arange(out_hw[1], device=x.device)[None, :] * w.stride[1] + pick % w.kernel[1]
    return top, rows * x.shape[3] + cols


def scatter_to_index(dy: torch.Tensor, index: torch.Tensor, in_hw: tuple[int, int]) -> torch.Tensor:
    """Route each top diff to the bottom element ``index`` (flat ``h·W + w``; −1 is dropped)."""
    n, c = dy.shape[0], dy.shape[1]
    keep = index >= 0
    grad = dy.new_zeros(n * c, in_hw[0] * in_hw[1])
    grad.scatter_add_(1, index.clamp(min=0).reshape(n * c, -1), (dy * keep).reshape(n * c, -1))
    return grad.view(n, c, *in_hw)
