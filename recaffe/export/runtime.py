"""Caffe's layer semantics as plain PyTorch modules (torch only; autograd gives the gradients).

This file is self-contained on purpose: ``recaffe export -output OUT.py`` copies it verbatim
into OUT.py, so an exported net runs with torch alone. Each module's parameters and buffers are
the Caffe layer's blobs, in Caffe's shapes and order (``caffe_blobs`` lists their names), so a
``.caffemodel`` maps onto a ``state_dict`` one blob to one tensor.

Where PyTorch's own module differs from Caffe (pooling's ceil rounding and clipped last window,
AVE pooling's divisor, LRN's WITHIN_CHANNEL region, BatchNorm's scale-factor blob and m/(m−1)
variance, SoftmaxWithLoss' normalisation) the module here does what Caffe does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

FLT_MIN = 1.1754943508222875e-38


def pooled_size(n: int, k: int, s: int, p: int, ceil_mode: bool) -> int:
    """Caffe's pooled length: ceil (or floor) of (n + 2p − k)/s, + 1; with a pad, a last
    window starting at or beyond n + p is dropped."""
    span = n + 2 * p - k
    out = (-(-span // s) if ceil_mode else span // s) + 1
    return out - 1 if p and (out - 1) * s >= n + p else out


def pool_geometry(
    in_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int],
    ceil_mode: bool,
) -> tuple[tuple[int, int], list[int], list[list[int]]]:
    """(output size, pads for F.pad as (left, right, top, bottom) — negative crops — and the
    AVE divisor of every output position per axis: the window clipped to [−pad, n + pad))."""
    out = tuple(pooled_size(n, k, s, p, ceil_mode) for n, k, s, p in zip(in_hw, kernel, stride, pad))
    pads: list[int] = []
    for n, o, k, s, p in reversed(list(zip(in_hw, out, kernel, stride, pad))):
        pads += [p, (o - 1) * s + k - n - p]
    divisors = [[min(i * s - p + k, n + p) - (i * s - p) for i in range(o)]
                for n, o, k, s, p in zip(in_hw, out, kernel, stride, pad)]
    return out, pads, divisors  # type: ignore[return-value]


class Pool(nn.Module):
    """Caffe's MAX/AVE pooling: ceil rounding, windows clipped to the image, AVE dividing by the
    window clipped to the padded image (padding counts, the overhang past it does not)."""

    def __init__(self, pool: str, kernel: tuple[int, int] | None, stride: tuple[int, int],
                 pad: tuple[int, int], ceil_mode: bool = True) -> None:
        super().__init__()
        self.pool, self.kernel, self.stride, self.pad, self.ceil_mode = pool, kernel, stride, pad, ceil_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hw = (x.shape[2], x.shape[3])
        kernel = self.kernel or hw  # global pooling
        _, pads, divisors = pool_geometry(hw, kernel, self.stride, self.pad, self.ceil_mode)
        if self.pool == "MAX":
            return F.max_pool2d(F.pad(x, pads, value=-math.inf), kernel, self.stride)
        size = kernel[0] * kernel[1]
        total = F.avg_pool2d(F.pad(x, pads), kernel, self.stride) * size
        divisor = torch.tensor(divisors[0], dtype=x.dtype, device=x.device).view(-1, 1) * torch.tensor(
            divisors[1], dtype=x.dtype, device=x.device).view(1, -1)
        return total / divisor


def spp_level(h: int, w: int, level: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Kernel (= stride) and pad of SPP's pyramid level: 2^level bins per axis."""
    bins = 2**level
    kernel = (-(-h // bins), -(-w // bins))
    return kernel, ((kernel[0] * bins - h + 1) // 2, (kernel[1] * bins - w + 1) // 2)


class SPP(nn.Module):
    """Spatial pyramid pooling: level l is Caffe's pooling into 2^l × 2^l bins; with more than one
    level each is flattened and they are concatenated."""

    def __init__(self, pyramid_height: int, pool: str) -> None:
        super().__init__()
        self.pyramid_height, self.pool = pyramid_height, pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = []
        for level in range(self.pyramid_height):
            kernel, pad = spp_level(x.shape[2], x.shape[3], level)
            levels.append(Pool(self.pool, kernel, kernel, pad)(x))
        return levels[0] if len(levels) == 1 else torch.cat([y.flatten(1) for y in levels], 1)


class LRN(nn.Module):
    """Caffe's LRN: y = x·scale^(−β); ACROSS_CHANNELS scale = k + (α/n)·Σ x² over n channels,
    WITHIN_CHANNEL scale = 1 + α·mean of x² over the zero-padded n×n square (k unused)."""

    def __init__(self, size: int, alpha: float, beta: float, k: float, across: bool) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k, self.across = size, alpha, beta, k, across

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = (self.size - 1) // 2
        if self.across:
            sq = F.pad((x * x).unsqueeze(1), (0, 0, 0, 0, pre, self.size - 1 - pre))
            window = F.avg_pool3d(sq, (self.size, 1, 1), stride=1).squeeze(1) * self.size
            scale = window * (self.alpha / self.size) + self.k
        else:
            scale = F.avg_pool2d(x * x, self.size, stride=1, padding=pre, count_include_pad=True)
            scale = scale * self.alpha + 1
        return x * scale.pow(-self.beta)


class MVN(nn.Module):
    """y = x − mean, then ÷ (√mean(y²) + eps) with ``normalize_variance``; means over H·W per
    channel, or C·H·W per sample ``across_channels``; the top is 4-D as in Caffe."""

    def __init__(self, normalize_variance: bool, across_channels: bool, eps: float) -> None:
        super().__init__()
        self.normalize_variance, self.across_channels, self.eps = normalize_variance, across_channels, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (*x.shape, 1, 1, 1)[:max(4, x.dim())]
        rows = x.reshape(shape[0], -1) if self.across_channels else x.reshape(shape[0] * shape[1], -1)
        y = rows - rows.mean(1, keepdim=True)
        if self.normalize_variance:
            y = y / ((y * y).mean(1, keepdim=True).sqrt() + self.eps)
        return y.reshape(shape)


class Tile(nn.Module):
    def __init__(self, axis: int, tiles: int) -> None:
        super().__init__()
        self.axis, self.tiles = axis, tiles

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat(*[self.tiles if i == self.axis else 1 for i in range(x.dim())])


class Parameter(nn.Module):
    """A learned blob as a top (Caffe's Parameter layer)."""

    caffe_blobs = ("weight",)

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(shape))

    def forward(self) -> torch.Tensor:
        return self.weight


class BatchReindex(nn.Module):
    """y[i] = x[int(index[i])]."""

    def forward(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return x.index_select(0, index.long())


class Im2col(nn.Module):
    """Caffe's im2col of 2-D windows: (N, C, H, W) -> (N, C·kh·kw, OH, OW), channel-major columns."""

    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int],
                 dilation: tuple[int, int]) -> None:
        super().__init__()
        self.kernel, self.stride, self.pad, self.dilation = kernel, stride, pad, dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in
               zip(x.shape[2:], self.kernel, self.stride, self.pad, self.dilation)]
        columns = F.unfold(x, self.kernel, self.dilation, self.pad, self.stride)
        return columns.view(x.shape[0], -1, *out)


class Embed(nn.Module):
    """y[..., :] = W[int(x[...]), :] + b; W is (input_dim, num_output)."""

    caffe_blobs = ("weight", "bias")

    def __init__(self, input_dim: int, num_output: int, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(input_dim, num_output))
        self.bias = nn.Parameter(torch.zeros(num_output)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.embedding(x.long(), self.weight)
        return y if self.bias is None else y + self.bias


class InnerProduct(nn.Module):
    """y = x (flattened from ``axis``) · Wᵀ + b; W is (N, K), or (K, N) with ``transpose``."""

    caffe_blobs = ("weight", "bias")

    def __init__(self, weight_shape: tuple[int, int], bias: bool, axis: int, transpose: bool) -> None:
        super().__init__()
        self.axis, self.transpose = axis, transpose
        self.weight = nn.Parameter(torch.zeros(weight_shape))
        self.bias = nn.Parameter(torch.zeros(weight_shape[0 if not transpose else 1])) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(self.axis) if x.dim() > self.axis else x.unsqueeze(-1)
        y = flat @ (self.weight if self.transpose else self.weight.t())
        return y if self.bias is None else y + self.bias


class BatchNorm(nn.Module):
    """Caffe's BatchNorm (no scale/shift: a Scale layer follows). Blobs: the running sums of the
    mean and of the variance (×m/(m−1)), and the scale factor s they are divided by. Training
    (unless ``use_global_stats``) normalises by the batch's biased statistics and updates the
    sums: s ← maf·s + 1, μ_sum ← maf·μ_sum + μ, σ²_sum ← maf·σ²_sum + m/(m−1)·σ²."""

    caffe_blobs = ("mean", "variance", "scale_factor")
    mean: torch.Tensor
    variance: torch.Tensor
    scale_factor: torch.Tensor

    def __init__(self, channels: int, eps: float, moving_average_fraction: float,
                 use_global_stats: bool | None) -> None:
        super().__init__()
        self.eps, self.maf, self.use_global_stats = eps, moving_average_fraction, use_global_stats
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("variance", torch.zeros(channels))
        self.register_buffer("scale_factor", torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = self.mean.shape[0]
        flat = x.reshape(x.shape[0], channels, -1)
        use_global = self.use_global_stats if self.use_global_stats is not None else not self.training
        mean: torch.Tensor
        var: torch.Tensor
        if use_global:
            s = float(self.scale_factor[0])
            factor = 0.0 if s == 0 else 1 / s
            mean, var = self.mean * factor, self.variance * factor
        else:
            var, mean = torch.var_mean(flat, dim=(0, 2), correction=0)
            m = flat.shape[0] * flat.shape[2]
            with torch.no_grad():
                self.scale_factor.mul_(self.maf).add_(1)
                self.mean.mul_(self.maf).add_(mean)
                self.variance.mul_(self.maf).add_(var, alpha=m / (m - 1) if m > 1 else 1.0)
        std = (var + self.eps).sqrt()
        return ((flat - mean.view(1, -1, 1)) / std.view(1, -1, 1)).view(x.shape)


def broadcast(t: torch.Tensor, x: torch.Tensor, axis: int) -> torch.Tensor:
    """``t`` viewed to apply to x's axes [axis, axis + t.dim())."""
    return t.view(*t.shape, *([1] * (x.dim() - axis - t.dim())))


class Scale(nn.Module):
    """y = x ⊙ s (+ b), s broadcast over x's axes from ``axis``; s learned or the second input."""

    caffe_blobs = ("weight", "bias")

    def __init__(self, shape: tuple[int, ...] | None, axis: int, bias_shape: tuple[int, ...] | None) -> None:
        super().__init__()
        self.axis = axis
        self.weight = nn.Parameter(torch.ones(shape)) if shape is not None else None
        self.bias = nn.Parameter(torch.zeros(bias_shape)) if bias_shape is not None else None

    def forward(self, x: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        s = self.weight if scale is None else scale
        y = x * broadcast(s, x, self.axis)  # type: ignore[arg-type]
        return y if self.bias is None else y + broadcast(self.bias, x, self.axis)


class Bias(nn.Module):
    """y = x + b, b broadcast over x's axes from ``axis``; b learned or the second input."""

    caffe_blobs = ("bias",)

    def __init__(self, shape: tuple[int, ...] | None, axis: int) -> None:
        super().__init__()
        self.axis = axis
        self.bias = nn.Parameter(torch.zeros(shape)) if shape is not None else None

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        b = self.bias if bias is None else bias
        return x + broadcast(b, x, self.axis)  # type: ignore[arg-type]


class Eltwise(nn.Module):
    """PROD, SUM with coefficients, or MAX of equally shaped inputs."""

    def __init__(self, operation: str, coeffs: tuple[float, ...]) -> None:
        super().__init__()
        self.operation, self.coeffs = operation, coeffs

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        y = xs[0] if self.operation != "SUM" or self.coeffs[0] == 1 else xs[0] * self.coeffs[0]
        for i, x in enumerate(xs[1:], 1):
            if self.operation == "PROD":
                y = y * x
            elif self.operation == "MAX":
                y = torch.maximum(y, x)
            else:
                y = y + (x if self.coeffs[i] == 1 else x * self.coeffs[i])
        return y


class Concat(nn.Module):
    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, self.axis)


class Slice(nn.Module):
    def __init__(self, axis: int, sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.axis, self.sizes = axis, sizes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.split(x, list(self.sizes), self.axis)


class Crop(nn.Module):
    """x cut to the reference's size on every axis from ``axis``, starting at ``offsets``."""

    def __init__(self, axis: int, offsets: tuple[int, ...]) -> None:
        super().__init__()
        self.axis, self.offsets = axis, offsets

    def forward(self, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        for i, offset in enumerate(self.offsets):
            x = x.narrow(self.axis + i, offset, reference.shape[self.axis + i])
        return x


class Reshape(nn.Module):
    """Caffe's Reshape (``dims`` with 0 = copy and −1 = infer, replacing ``num_axes`` axes from
    ``axis``) and Flatten (given as its equivalent Reshape)."""

    def __init__(self, dims: tuple[int, ...], axis: int, num_axes: int) -> None:
        super().__init__()
        self.dims, self.axis, self.num_axes = dims, axis, num_axes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        axis = self.axis if self.axis >= 0 else x.dim() + 1 + self.axis
        end = x.dim() if self.num_axes == -1 else axis + self.num_axes
        dims = [x.shape[axis + i] if d == 0 else d for i, d in enumerate(self.dims)]
        return x.reshape(*x.shape[:axis], *dims, *x.shape[end:])


class Flatten(nn.Module):
    """Merges axes ``axis..end_axis``; end_axis = axis − 1 inserts a singleton axis."""

    def __init__(self, axis: int, end_axis: int) -> None:
        super().__init__()
        self.axis, self.end_axis = axis, end_axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        axis = self.axis % x.dim()
        end = self.end_axis % x.dim()
        return x.reshape(*x.shape[:axis], -1, *x.shape[end + 1:])


class Power(nn.Module):
    """y = (shift + scale·x)^power."""

    def __init__(self, power: float, scale: float, shift: float) -> None:
        super().__init__()
        self.power, self.scale, self.shift = power, scale, shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.power == 0:
            return torch.ones_like(x)
        y = x if self.scale == 1 else x * self.scale
        y = y if self.shift == 0 else y + self.shift
        return y if self.power == 1 else y.pow(self.power)


class Exp(nn.Module):
    """y = base^(shift + scale·x) = outer·e^(inner·x)."""

    def __init__(self, inner: float, outer: float) -> None:
        super().__init__()
        self.inner, self.outer = inner, outer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.exp(x if self.inner == 1 else x * self.inner)
        return y if self.outer == 1 else y * self.outer


class Log(nn.Module):
    """y = ln(shift + scale·x) / ln(base)."""

    def __init__(self, scale: float, shift: float, base_scale: float) -> None:
        super().__init__()
        self.scale, self.shift, self.base_scale = scale, shift, base_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.scale == 1 else x * self.scale
        y = torch.log(y if self.shift == 0 else y + self.shift)
        return y if self.base_scale == 1 else y * self.base_scale


class ELU(nn.Module):
    """y = x if x > 0 else α·(e^x − 1) (Caffe's form, not expm1)."""

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0, x, (torch.exp(x) - 1) * self.alpha)


class BNLL(nn.Module):
    """y = x + log(1 + e^−x) for x > 0, else log(1 + e^x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        negative = -x.abs()  # e^negative cannot overflow on either branch
        return torch.clamp(x, min=0) + torch.log1p(torch.exp(negative))


class AbsVal(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs()


class Threshold(nn.Module):
    """y = 1 if x > threshold else 0."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > self.threshold).to(x.dtype)


class Swish(nn.Module):
    """y = x·sigmoid(β·x)."""

    def __init__(self, beta: float) -> None:
        super().__init__()
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x * self.beta)


class Reduction(nn.Module):
    """SUM, ASUM, SUMSQ or MEAN over every axis from ``axis``, times ``coeff``."""

    def __init__(self, operation: str, axis: int, coeff: float) -> None:
        super().__init__()
        self.operation, self.axis, self.coeff = operation, axis, coeff

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(*x.shape[:self.axis], -1)
        if self.operation == "ASUM":
            flat = flat.abs()
        elif self.operation == "SUMSQ":
            flat = flat * flat
        y = flat.sum(-1)
        coeff = self.coeff / flat.shape[-1] if self.operation == "MEAN" else self.coeff
        return y if coeff == 1 else y * coeff


class ArgMax(nn.Module):
    """Index (float) of the largest entry, per item over C·H·W or along ``axis``; ties go to
    the higher index, as in Caffe. ``out_max_val`` adds (or, with an axis, gives) the value."""

    def __init__(self, axis: int | None, out_max_val: bool) -> None:
        super().__init__()
        self.axis, self.out_max_val = axis, out_max_val

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1) if self.axis is None else x
        dim = 1 if self.axis is None else self.axis
        flipped = flat.flip(dim)  # the last maximum, as Caffe's descending (value, index) sort
        value, index = flipped.max(dim, keepdim=True)
        index = (flat.shape[dim] - 1 - index).to(x.dtype)
        if self.axis is not None:
            return value if self.out_max_val else index
        y = torch.stack([index, value], 1) if self.out_max_val else index.unsqueeze(1)
        return y.view(*y.shape, *([1] * (x.dim() - 3)))


def normalizer(mode: str, outer: int, count: int, valid: int) -> float:
    """Caffe's loss normaliser: VALID the non-ignored count, BATCH_SIZE the outer size, FULL every
    position, NONE 1; never below 1."""
    return max(float({"VALID": valid, "BATCH_SIZE": outer, "FULL": count, "NONE": 1}[mode]), 1.0)


class SoftmaxWithLoss(nn.Module):
    """−Σ log(max(softmax(x)[label], FLT_MIN)) / normaliser over the non-ignored positions."""

    def __init__(self, axis: int, ignore_label: int | None, normalization: str) -> None:
        super().__init__()
        self.axis, self.ignore_label, self.normalization = axis, ignore_label, normalization

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        outer = math.prod(x.shape[:self.axis])
        prob = torch.softmax(x.reshape(outer, x.shape[self.axis], -1), 1)
        label = label.reshape(outer, -1).long()
        valid = torch.ones_like(label, dtype=torch.bool) if self.ignore_label is None else (
            label != self.ignore_label)
        picked = prob.gather(1, torch.where(valid, label, 0).unsqueeze(1)).squeeze(1)
        log_p = torch.where(valid, picked.clamp(min=FLT_MIN).log(), 0)
        return -log_p.sum() / normalizer(self.normalization, outer, label.numel(), int(valid.sum()))


class SigmoidCrossEntropyLoss(nn.Module):
    """−Σ [x·(t − 1[x ≥ 0]) − log(1 + e^(x − 2x·1[x ≥ 0]))] / normaliser, skipping targets whose
    integer part is ``ignore_label``."""

    def __init__(self, ignore_label: int | None, normalization: str) -> None:
        super().__init__()
        self.ignore_label, self.normalization = ignore_label, normalization

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        flat, t = x.reshape(-1), target.reshape(-1)
        positive = (flat >= 0).to(x.dtype)
        terms = flat * (t - positive) - torch.log(1 + torch.exp(flat - 2 * flat * positive))
        count = flat.numel()
        if self.ignore_label is not None:
            valid = t.long() != self.ignore_label
            terms, count = torch.where(valid, terms, 0), int(valid.sum())
        return -terms.sum() / normalizer(self.normalization, x.shape[0], flat.numel(), count)


class EuclideanLoss(nn.Module):
    """Σ (a − b)² / (2N), N = a.shape[0]."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        diff = a.reshape(-1) - b.reshape(-1)
        return torch.dot(diff, diff) / a.shape[0] / 2


class MultinomialLogisticLoss(nn.Module):
    """−Σ log(max(p[label], 1e-20)) / N over probabilities p (N, K)."""

    def forward(self, p: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        flat = p.reshape(p.shape[0], -1)
        picked = flat.gather(1, label.reshape(-1, 1).long()).squeeze(1)
        return -picked.clamp(min=1e-20).log().sum() / p.shape[0]


class HingeLoss(nn.Module):
    """One-versus-all hinge: l_k = max(0, 1 + s_k·x_k), s = −1 at the label, +1 elsewhere;
    Σ l / N (L1) or Σ l² / N (L2)."""

    def __init__(self, norm: str) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        sign = torch.ones_like(flat).scatter_(1, label.reshape(-1)[: x.shape[0], None].long(), -1.0)
        margin = torch.relu(1 + sign * flat)
        return (margin if self.norm == "L1" else margin * margin).sum() / x.shape[0]


class Accuracy(nn.Module):
    """Top-k accuracy over the non-ignored labels: an item is right iff #{k : s_k ≥ s_label} ≤
    top_k (ties count against it); with ``per_class``, also each class's accuracy."""

    def __init__(self, axis: int, top_k: int, ignore_label: int | None, per_class: bool) -> None:
        super().__init__()
        self.axis, self.top_k, self.ignore_label, self.per_class = axis, top_k, ignore_label, per_class

    def forward(self, x: torch.Tensor, label: torch.Tensor
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        outer, channels = math.prod(x.shape[:self.axis]), x.shape[self.axis]
        scores = x.detach().reshape(outer, channels, -1)
        label = label.reshape(outer, -1).long()
        valid = torch.ones_like(label, dtype=torch.bool) if self.ignore_label is None else (
            label != self.ignore_label)
        label = torch.where(valid, label, 0)
        truth = scores.gather(1, label.unsqueeze(1))
        correct = ((scores >= truth).sum(1) <= self.top_k) & valid
        accuracy = correct.sum().to(x.dtype) / valid.sum().clamp(min=1)
        if not self.per_class:
            return accuracy
        totals = torch.bincount(label[valid], minlength=channels).to(x.dtype)
        hits = torch.bincount(label[correct], minlength=channels).to(x.dtype)
        return accuracy, hits / totals.clamp(min=1)


def weighted_loss(outputs: dict[str, torch.Tensor], loss_weights: dict[str, float]) -> torch.Tensor:
    """Caffe's training objective: Σ loss_weight · Σ top over the loss tops."""
    terms = [outputs[name].sum() * weight for name, weight in loss_weights.items() if weight]
    return torch.stack(terms).sum()
