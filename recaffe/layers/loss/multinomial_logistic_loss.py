from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs
from recaffe.layers.loss.base import LOG_THRESHOLD, LossLayer, read_labels
from recaffe.registry import LAYERS


@LAYERS.register("MultinomialLogisticLoss")
@final
class MultinomialLogisticLossLayer(LossLayer):
    """Negative log-likelihood of the labelled class, from probabilities (not scores).

    Forward: loss = −Σ_i log(max(p[i, label_i], 1e-20)) / N
    Backward: dp[i, label_i] = −top.diff / N / max(p[i, label_i], 1e-20); zero elsewhere.
    Params: none besides loss_weight.
    Bottoms: p (N, …), K = count / N probabilities per item; labels (N, 1, 1, 1) in [0, K).
    Tops: loss ().
    In place: no.
    """

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        super().reshape(bottom, top)
        label = bottom[1]
        if (label.channels, label.height, label.width) != (1, 1, 1):
            raise self.error(f"the labels must be (N, 1, 1, 1) (trailing 1s optional), got {label.shape}")
        self.num = bottom[0].shape[0]
        self.dim = bottom[0].count() // self.num if self.num else 0

    def _label_probs(self, bottom: Blobs) -> tuple[torch.Tensor, torch.Tensor]:
        """The labels (N, 1) and their floored probabilities (N, 1)."""
        label, _ = read_labels(self, bottom[1].data.reshape(self.num, 1), self.dim)
        p = bottom[0].data.reshape(self.num, self.dim).gather(1, label)
        return label, p.clamp(min=LOG_THRESHOLD)

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        _, p = self._label_probs(bottom)
        top[0].data.copy_(-p.log().sum() / self.num)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        self.check_no_label_gradient(propagate_down)
        if propagate_down[0]:
            label, p = self._label_probs(bottom)
            dx = bottom[0].diff.view(self.num, self.dim)
            dx.zero_()
            dx.scatter_(1, label, (-top[0].diff / self.num) / p)
