from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs
from recaffe.layers.loss.base import LossLayer
from recaffe.registry import LAYERS


@LAYERS.register("ContrastiveLoss")
@final
class ContrastiveLossLayer(LossLayer):
    """Contrastive loss of feature pairs: pull similar pairs together, push others past a margin.

    Forward: with diff = a − b, d² = ‖diff‖² per pair and y = int(sim) ≠ 0,
        loss = Σ [y·d² + (1 − y)·max(m − d, 0)²] / (2N)
        (legacy_version: the dissimilar term is max(m − d², 0))
    Backward: da = −db = top.diff / N · diff · (y ? 1 : −(m − d)/(d + 1e-4) if m − d > 0 else 0)
        (legacy: −1 if m − d² > 0 else 0); sim gets no gradient.
    Params (contrastive_loss_param): margin=1, legacy_version=false.
    Bottoms: a (N, C, 1, 1), b (N, C, 1, 1), sim (N, 1, 1, 1) (trailing 1s optional).
    Tops: loss ().
    In place: no.
    """

    exact_num_bottom_blobs = 3

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        super().reshape(bottom, top)
        a, b, sim = bottom
        if a.channels != b.channels or (a.height, a.width, b.height, b.width) != (1, 1, 1, 1):
            raise self.error(f"a and b must be (N, C, 1, 1) alike, got {a.shape} and {b.shape}")
        if (sim.channels, sim.height, sim.width) != (1, 1, 1) or sim.num != a.num:
            raise self.error(f"sim must be ({a.num}, 1, 1, 1), got {sim.shape}")
        self.num, self.channels = a.num, a.channels

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 2

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.contrastive_loss_param
        a, b = (blob.data.reshape(self.num, self.channels) for blob in bottom[:2])
        self.diff = a - b  # (N, C)
        self.dist_sq = (self.diff * self.diff).sum(1)  # (N,)
        similar = bottom[2].data.reshape(-1).long() != 0
        if p.legacy_version:
            dissimilar = (p.margin - self.dist_sq).clamp(min=0)
        else:
            dissimilar = (p.margin - self.dist_sq.sqrt()).clamp(min=0).square()
        loss = torch.where(similar, self.dist_sq, dissimilar).sum()
        top[0].data.copy_(loss / self.num / 2)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        p = self.param.contrastive_loss_param
        similar = bottom[2].data.reshape(-1).long() != 0
        if p.legacy_version:
            mdist = p.margin - self.dist_sq
            beta = torch.full_like(mdist, -1.0)
        else:
            dist = self.dist_sq.sqrt()
            mdist = p.margin - dist
            beta = -mdist / (dist + 1e-4)
        coeff = torch.where(similar, 1.0, torch.where(mdist > 0, beta, 0.0)).unsqueeze(1)  # (N, 1)
        for i, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[i]:
                alpha = sign * top[0].diff / self.num
                dx = bottom[i].diff.view(self.num, self.channels)
                torch.mul(self.diff, coeff * alpha, out=dx)
