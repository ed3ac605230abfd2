"""Naive, differentiable references for the vision layers, written from Caffe's loops.

They loop over kernel offsets or output windows (small test shapes only) and share no code with
``recaffe.math``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F

from recaffe.proto import caffe_pb2

FLT_MAX = float(np.finfo(np.float32).max)


def conv_geometry(p: caffe_pb2.ConvolutionParameter, nd: int) -> tuple[list[int], ...]:
    """(kernel, stride, pad, dilation) from a convolution_param, per spatial axis."""

    def get(name: str, short: str, default: int) -> list[int]:
        if short and p.HasField(f"{short}_h"):
            return [getattr(p, f"{short}_h"), getattr(p, f"{short}_w")]
        values = list(getattr(p, name)) or [default]
        return values * nd if len(values) == 1 else values

    return (get("kernel_size", "kernel", 1), get("stride", "stride", 1), get("pad", "pad", 0),
            get("dilation", "", 1))


def conv_out_size(n: int, k: int, s: int, p: int, d: int) -> int:
    return int((n + 2 * p - (d * (k - 1) + 1)) / s) + 1  # C division truncates toward zero


def _shifted(xpad: torch.Tensor, offsets: tuple[int, ...], out: list[int], stride: list[int]) -> torch.Tensor:
    index = [slice(None), slice(None)] + [
        slice(o, o + (n - 1) * s + 1, s) for o, n, s in zip(offsets, out, stride)]
    return xpad[tuple(index)]


def _pad_for(x: torch.Tensor, out: list[int], kernel, stride, pad, dilation) -> torch.Tensor:
    """Zero-pad ``x`` by ``pad`` before and enough after for every window (crop when too much)."""
    pads: list[int] = []
    for i in reversed(range(len(out))):
        extent = dilation[i] * (kernel[i] - 1) + 1
        pads += [pad[i], (out[i] - 1) * stride[i] + extent - x.shape[2 + i] - pad[i]]
    return F.pad(x, pads)


def naive_conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, geometry,
               group: int) -> torch.Tensor:
    """Caffe's convolution of (N, C, *S) by (Co, C/g, *k): Σ over kernel offsets of shifted inputs."""
    kernel, stride, pad, dilation = geometry
    n, nd = x.shape[0], x.dim() - 2
    out = [conv_out_size(x.shape[2 + i], kernel[i], stride[i], pad[i], dilation[i]) for i in range(nd)]
    xpad = _pad_for(x, out, kernel, stride, pad, dilation)
    wg = w.reshape(group, w.shape[0] // group, w.shape[1], -1)  # (g, Co/g, C/g, Πk)
    y = x.new_zeros(n, group, w.shape[0] // group, *out)
    for j, offsets in enumerate(itertools.product(*[range(k) for k in kernel])):
        patch = _shifted(xpad, tuple(o * d for o, d in zip(offsets, dilation)), out, stride)
        y = y + torch.einsum("gac,ngc...->nga...", wg[..., j], patch.reshape(n, group, -1, *out))
    y = y.reshape(n, w.shape[0], *out)
    return y if b is None else y + b.view(1, -1, *[1] * nd)


def naive_deconv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, geometry,
                 group: int) -> torch.Tensor:
    """Caffe's deconvolution of (N, Ci, *S) by (Ci, Co/g, *k): each input scatters W·x."""
    kernel, stride, pad, dilation = geometry
    n, nd = x.shape[0], x.dim() - 2
    spatial = list(x.shape[2:])
    full = [stride[i] * (spatial[i] - 1) + dilation[i] * (kernel[i] - 1) + 1 for i in range(nd)]
    co = w.shape[1] * group
    wg = w.reshape(group, w.shape[0] // group, w.shape[1], -1)  # (g, Ci/g, Co/g, Πk)
    y = x.new_zeros(n, group, co // group, *full)
    xg = x.reshape(n, group, -1, *spatial)
    for j, offsets in enumerate(itertools.product(*[range(k) for k in kernel])):
        index = [slice(None)] * 3 + [slice(o * d, o * d + (m - 1) * s + 1, s)
                                     for o, d, m, s in zip(offsets, dilation, spatial, stride)]
        y[tuple(index)] += torch.einsum("gca,ngc...->nga...", wg[..., j], xg)
    y = y.reshape(n, co, *full)[(slice(None),) * 2 + tuple(slice(p, f - p) for p, f in zip(pad, full))]
    return y if b is None else y + b.view(1, -1, *[1] * nd)


def naive_im2col(x: torch.Tensor, geometry) -> torch.Tensor:
    """(N, C, *S) → (N, C·Πk, *out), rows ordered (channel, kernel offsets)."""
    kernel, stride, pad, dilation = geometry
    nd = x.dim() - 2
    out = [conv_out_size(x.shape[2 + i], kernel[i], stride[i], pad[i], dilation[i]) for i in range(nd)]
    xpad = _pad_for(x, out, kernel, stride, pad, dilation)
    patches = [_shifted(xpad, tuple(o * d for o, d in zip(offsets, dilation)), out, stride)
               for offsets in itertools.product(*[range(k) for k in kernel])]
    return torch.stack(patches, 2).reshape(x.shape[0], -1, *out)  # (N, C, Πk, *out) → rows


def pooled_size(n: int, k: int, s: int, p: int, ceil: bool, clip: bool) -> int:
    out = (math.ceil if ceil else math.floor)((n + 2 * p - k) / s) + 1
    return out - 1 if clip and (out - 1) * s >= n + p else out


def naive_pool(x: torch.Tensor, kernel, stride, pad, pool: int, ceil: bool = True):
    """Caffe's CPU MAX/AVE pooling loops over windows: returns (top, mask or None)."""
    n, c, h, w = x.shape
    ph, pw = (pooled_size(size, k, s, p, ceil, any(pad))
              for size, k, s, p in zip((h, w), kernel, stride, pad))
    tops, masks = [], []
    for i, j in itertools.product(range(ph), range(pw)):
        hs, ws = i * stride[0] - pad[0], j * stride[1] - pad[1]
        he, we = min(hs + kernel[0], h + pad[0]), min(ws + kernel[1], w + pad[1])
        size = (he - hs) * (we - ws)
        hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
        window = x[:, :, hs:he, ws:we].reshape(n, c, -1)
        if pool == caffe_pb2.PoolingParameter.AVE:
            tops.append(window.sum(-1) / size)
            continue
        if window.shape[-1] == 0:
            tops.append(x.new_full((n, c), -FLT_MAX))
            masks.append(torch.full((n, c), -1.0, dtype=x.dtype))
            continue
        value, arg = window.max(-1)
        tops.append(value)
        masks.append(((hs + arg // (we - ws)) * w + ws + arg % (we - ws)).to(x.dtype))
    top = torch.stack(tops, -1).reshape(n, c, ph, pw)
    return top, (torch.stack(masks, -1).reshape(n, c, ph, pw) if masks else None)
