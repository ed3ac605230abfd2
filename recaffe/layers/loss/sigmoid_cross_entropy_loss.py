from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs
from recaffe.layers.loss.base import LossLayer, ignore_label
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS


@LAYERS.register("SigmoidCrossEntropyLoss")
@final
class SigmoidCrossEntropyLossLayer(LossLayer):
    """Cross-entropy between targets t in [0, 1] and σ(x), computed stably from the scores x.

    Forward: loss = −Σ_valid [x·(t − 1[x ≥ 0]) − log(1 + exp(x − 2x·1[x ≥ 0]))] / normalizer
    Backward: dx = (σ(x) − t) · top.diff / normalizer, zero where int(t) is the ignore label;
        σ(x) = 0.5·tanh(0.5x) + 0.5 (Caffe's Sigmoid), saved by the forward.
    Params: loss_param.ignore_label (unset), normalization (default BATCH_SIZE here, unless
        ``normalization`` or the deprecated ``normalize`` is given).
    Bottoms: x (N, …); t with the same count.
    Tops: loss ().
    In place: no.
    """

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        super().layer_setup(bottom, top)
        self.ignore = ignore_label(self.param.loss_param)
        self.mode = self.normalization_mode(caffe_pb2.LossParameter.BATCH_SIZE)

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        super().reshape(bottom, top)
        if bottom[0].count() != bottom[1].count():
            raise self.error(
                f"inputs must have the same count: {bottom[0].shape} vs {bottom[1].shape}"
            )
        self.outer, self.inner = bottom[0].shape[0], bottom[0].count(1)

    def _valid(self, bottom: Blobs) -> torch.Tensor | None:
        """Where the target (truncated to int) is not the ignore label; None without one."""
        if self.ignore is None:
            return None
        return bottom[1].data.reshape(-1).long() != self.ignore

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        x, t = bottom[0].data.reshape(-1), bottom[1].data.reshape(-1)
        positive = (x >= 0).to(x.dtype)
        terms = x * (t - positive) - torch.log(1 + torch.exp(x - 2 * x * positive))
        valid = self._valid(bottom)
        if valid is None:
            loss, count = -terms.sum(), x.numel()
        else:
            loss, count = -torch.where(valid, terms, 0).sum(), int(valid.sum())
        self.sigmoid = torch.tanh(0.5 * x).mul_(0.5).add_(0.5)
        self.norm = self.normalizer(self.mode, self.outer, self.inner, count)
        top[0].data.copy_(loss / self.norm)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        self.check_no_label_gradient(propagate_down)
        if propagate_down[0]:
            dx = bottom[0].diff.view(-1)
            torch.sub(self.sigmoid, bottom[1].data.reshape(-1), out=dx)
            valid = self._valid(bottom)
            if valid is not None:
                dx.masked_fill_(~valid, 0)
            dx.mul_(self.loss_scale(top[0], self.norm))
