from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs
from recaffe.layers.loss.base import LossLayer
from recaffe.registry import LAYERS


@LAYERS.register("EuclideanLoss")
@final
class EuclideanLossLayer(LossLayer):
    """Half the mean (over the batch) squared L2 distance between two blobs.

    Forward: loss = Σ (a − b)² / (2N), N = shape(0)
    Backward: da = (a − b) · top.diff / N ;  db = −(a − b) · top.diff / N
        (both from the difference saved by the forward)
    Params: none besides loss_weight.
    Bottoms: a (N, …), b (N, …) with the same count per item.
    Tops: loss ().
    In place: no.
    """

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        super().reshape(bottom, top)
        if bottom[0].count(1) != bottom[1].count(1):
            raise self.error(
                f"inputs must have the same dimension: {bottom[0].shape} vs {bottom[1].shape}"
            )

    def allow_force_backward(self, bottom_index: int) -> bool:
        return True  # both inputs get a gradient, so neither is a label

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        self.diff = torch.sub(bottom[0].data.reshape(-1), bottom[1].data.reshape(-1))
        num = bottom[0].shape[0]
        top[0].data.copy_(torch.dot(self.diff, self.diff) / num / 2)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        for i, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[i]:
                alpha = sign * top[0].diff / bottom[i].shape[0]
                torch.mul(self.diff, alpha, out=bottom[i].diff.view(-1))
