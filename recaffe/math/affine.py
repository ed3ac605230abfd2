"""Caffe's scale-then-shift of an input (Power and Log layers)."""

from __future__ import annotations

import torch


def scale_shift(x: torch.Tensor, scale: float, shift: float, out: torch.Tensor) -> torch.Tensor:
    """out = scale · x + shift, rounded after each step, skipping ×1 and +0 as Caffe does.

    Skipping is not only faster: x + 0 would turn −0.0 into +0.0 (log and pow see the sign).
    """
    if scale != 1:
        torch.mul(x, scale, out=out)
    elif out is not x:
        out.copy_(x)
    return out.add_(shift) if shift != 0 else out
