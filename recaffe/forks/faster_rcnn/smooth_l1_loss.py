from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe import forks
from recaffe.layer import Blobs
from recaffe.layers.loss.base import LossLayer
from recaffe.registry import LAYERS


@LAYERS.register("SmoothL1Loss", dialect="faster_rcnn")
@final
class SmoothL1LossLayer(LossLayer):
    """Fast/Faster R-CNN's SmoothL1Loss (smooth_L1_loss_layer.cu): box regression loss.

    Forward: d = w_in · (x − t); f(d) = 0.5 σ² d² if |d| < 1/σ², else |d| − 0.5/σ²;
        loss = Σ w_out · f(d) / N (N = x's first axis).
    Backward: dx = +top_diff/N · w_out · w_in · f'(d), dt = −(the same); f'(d) = σ² d or sign(d).
        Both bottoms may receive gradients (the fork allows force_backward to the targets).
    Params (smooth_l1_loss_param): sigma=1.
    Bottoms: predictions x, targets t [, inside weights w_in, outside weights w_out], all shaped
        alike (2 or 4 bottoms). Tops: the loss (a scalar). Its loss_weight is 0 unless the prototxt
        gives one: the fork's LayerSetUp does not call LossLayer's, which would default it to 1, so
        without ``loss_weight`` the loss is computed but neither summed into the net's loss nor
        back-propagated (py-faster-rcnn's prototxts always give ``loss_weight: 1``).
    In place: yes (as any loss layer).
    """

    exact_num_bottom_blobs = -1
    min_bottom_blobs = 2
    max_bottom_blobs = 4

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        sigma = forks.get_dialect("faster_rcnn").fork_param(self.param).smooth_l1_loss_param.sigma
        self.sigma2 = sigma * sigma
        if len(bottom) == 3:
            raise self.error("takes 2 bottoms, or 4 (with inside and outside weights), got 3")
        self.d: torch.Tensor | None = None

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        for i, blob in enumerate(bottom[1:], 1):
            if blob.shape != bottom[0].shape:
                raise self.error(f"bottom {i} has shape {blob.shape}, predictions {bottom[0].shape}")
        top[0].reshape([])

    def allow_force_backward(self, bottom_index: int) -> bool:
        return True

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        d = bottom[0].data - bottom[1].data
        if len(bottom) == 4:
            d = d * bottom[2].data
        small = d.abs() < 1 / self.sigma2
        errors = torch.where(small, 0.5 * d * d * self.sigma2, d.abs() - 0.5 / self.sigma2)
        if len(bottom) == 4:
            errors = errors * bottom[3].data
        self.d = d
        top[0].data.copy_(errors.sum() / bottom[0].shape[0])

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        d = self.from_forward(self.d, "the differences")
        grad = torch.where(d.abs() < 1 / self.sigma2, self.sigma2 * d, torch.sign(d))
        if len(bottom) == 4:
            grad = grad * bottom[2].data * bottom[3].data
        for i, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[i]:
                torch.mul(grad, sign * top[0].diff / bottom[0].shape[0], out=bottom[i].diff)
