from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs
from recaffe.layers.loss.base import FLT_MIN
from recaffe.layers.loss.softmax_base import SoftmaxLossLayer
from recaffe.registry import LAYERS


@LAYERS.register("SoftmaxWithLoss")
@final
class SoftmaxWithLossLayer(SoftmaxLossLayer):
    """Multinomial logistic loss of the softmax of class scores.

    Forward: p = softmax(x) along ``softmax_param.axis``;
        loss = −Σ_valid log(max(p[label], FLT_MIN)) / normalizer
    Backward: dx = (p − onehot(label)) · top.diff / normalizer, zero at ignored positions.
    Params: softmax_param.axis=1; loss_param.ignore_label (unset), normalization=VALID (the
        deprecated ``normalize``: true VALID, false BATCH_SIZE).
    Bottoms: x (outer, C, inner) around the axis; labels with outer·inner values in [0, C)
        (float, truncated to int).
    Tops: loss (); optionally prob, shaped like x (shares the internal probabilities; give
        ``loss_weight`` for both tops).
    In place: no.
    """

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        super().layer_setup(bottom, top)
        self.mode = self.normalization_mode()

    def softmax_axis(self) -> int:
        return self.param.softmax_param.axis

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        prob = self.compute_prob(bottom, top)  # (outer, C, inner)
        label, valid = self.labels(bottom)  # (outer, inner)
        log_p = prob.gather(1, label.unsqueeze(1)).squeeze(1).clamp_(min=FLT_MIN).log_()
        loss = -(log_p if self.ignore is None else torch.where(valid, log_p, 0)).sum()
        top[0].data.copy_(loss / self._normalizer(label, valid))

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        self.check_no_label_gradient(propagate_down)
        if propagate_down[0]:
            label, valid = self.labels(bottom)
            mask = valid.unsqueeze(1)  # (outer, 1, inner)
            dx = bottom[0].diff.view(self.outer, self.channels, self.inner)
            dx.copy_(self.prob_view())
            dx.scatter_add_(1, label.unsqueeze(1), -mask.to(dx.dtype))
            if self.ignore is not None:
                dx.masked_fill_(~mask, 0)
            dx.mul_(self.loss_scale(top[0], self._normalizer(label, valid)))

    def _normalizer(self, label: torch.Tensor, valid: torch.Tensor) -> float:
        count = label.numel() if self.ignore is None else int(valid.sum())  # no sync without ignore
        return self.normalizer(self.mode, self.outer, self.inner, count)
