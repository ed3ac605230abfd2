"""Caffe's softmax along one axis, shared by Softmax, SoftmaxWithLoss and InfogainLoss."""

from __future__ import annotations

import torch


def softmax(x: torch.Tensor, axis: int, out: torch.Tensor) -> torch.Tensor:
    """Write ``exp(x − max) / Σ exp(x − max)`` along ``axis`` into ``out`` (may be ``x``).

    The max is taken per position along ``axis`` and subtracted first, as Caffe does, so large
    scores do not overflow.
    """
    torch.sub(x, x.amax(axis, keepdim=True), out=out)
    out.exp_()
    out.div_(out.sum(axis, keepdim=True))
    return out
