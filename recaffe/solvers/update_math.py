"""Tensor steps shared by several solvers' ``compute_update_value`` (Caffe's float kernels)."""

from __future__ import annotations

import torch

from recaffe.math.floats import f32


def axpby(alpha: float, x: torch.Tensor, beta: float, y: torch.Tensor) -> None:
    """y ← alpha·x + beta·y, as Caffe's ``caffe_cpu_axpby`` does it: y *= beta, then y += alpha·x.

    NOTE: each product is rounded before the sum (no fused multiply-add, which ``add_(x,
    alpha=...)`` may use), so a numpy loop ``h = beta * h + alpha * g`` gives the same bits.
    """
    y.mul_(beta).add_(x * alpha)


def moving_average(history: torch.Tensor, value: torch.Tensor, decay: float) -> None:
    """history ← decay·history + (1 − decay)·value, with 1 − decay rounded to float."""
    axpby(f32(1.0 - decay), value, decay, history)


def rms_scaled(
    numerator: torch.Tensor, mean_square: torch.Tensor, delta: float, scale: float, out: torch.Tensor
) -> None:
    """out ← scale · numerator / (√mean_square + delta)."""
    denominator = torch.sqrt(mean_square).add_(delta)
    torch.div(numerator, denominator, out=denominator)
    torch.mul(denominator, scale, out=out)
