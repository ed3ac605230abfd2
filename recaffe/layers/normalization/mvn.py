from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs, Layer
from recaffe.registry import LAYERS


@LAYERS.register("MVN")
@final
class MVNLayer(Layer):
    """Mean-variance normalization of each (sample, channel), or each sample across channels.

    Forward: y = x − mean(x), then with normalize_variance y ← y / (sqrt(mean(y²)) + eps).
    NOTE: eps is added to the standard deviation, not to the variance.
    Backward: normalize_variance dx = (dy − mean(dy) − mean(dy ⊙ y) ⊙ y) / (std + eps);
        otherwise dx = dy − mean(dy). Means run over H·W, or C·H·W with across_channels.
    NOTE: that is Caffe's formula, the true gradient only in the limit eps → 0.
    Params (mvn_param): normalize_variance=true, across_channels=false, eps=1e-9.
    Bottoms: x (N, C, H, W), at most 4 axes (missing trailing axes count as 1).
    Tops: y, shaped (N, C, H, W) through the legacy 4-D accessors (a (N, C) bottom gives (N, C, 1, 1)).
    In place: yes here; Caffe's own in-place backward is wrong with normalize_variance (it reads
        dy after overwriting it), this layer computes the true gradient.
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1
    supports_in_place = True

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        b = bottom[0]
        if b.num_axes > 4:
            raise self.error(f"needs a bottom of at most 4 axes, got shape {b.shape}")
        top[0].reshape((b.num, b.channels, b.height, b.width))
        # the groups normalized independently: samples, or (sample, channel) pairs
        self.rows = b.num if self.param.mvn_param.across_channels else b.num * b.channels

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.mvn_param
        x, y = bottom[0].data.view(self.rows, -1), top[0].data.view(self.rows, -1)  # (rows, dim)
        if not p.normalize_variance:
            torch.sub(x, x.mean(dim=1, keepdim=True), out=y)
            return
        var, mean = torch.var_mean(x, dim=1, keepdim=True, correction=0)  # (rows, 1) each
        torch.sub(x, mean, out=y)
        self.std = var.sqrt_().add_(p.eps)
        y.div_(self.std)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        dy, dx = top[0].diff.view(self.rows, -1), bottom[0].diff.view(self.rows, -1)
        if not self.param.mvn_param.normalize_variance:
            torch.sub(dy, dy.mean(dim=1, keepdim=True), out=dx)
            return
        y = top[0].data.view(self.rows, -1)
        correction = y * (dy * y).sum(dim=1, keepdim=True) + dy.sum(dim=1, keepdim=True)
        torch.sub(dy, correction, alpha=1 / dy.shape[1], out=dx)
        dx.div_(self.std)
