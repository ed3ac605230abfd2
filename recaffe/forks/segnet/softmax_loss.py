from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe import forks
from recaffe.layer import Blobs
from recaffe.layers.loss.base import FLT_MIN
from recaffe.layers.loss.softmax_base import SoftmaxLossLayer
from recaffe.registry import LAYERS


@LAYERS.register("SoftmaxWithLoss", dialect="segnet")
@final
class SoftmaxWithLossLayer(SoftmaxLossLayer):
    """SegNet's SoftmaxWithLoss: BVLC's (of its time), with per-class weights (median frequency balancing).

    Forward: p = softmax(x) along ``softmax_param.axis``; with w = class_weighting[label] when
        ``weight_by_label_freqs`` (else 1), loss = −Σ_valid w · log(max(p[label], FLT_MIN)) / n,
        n = the number of valid (not ignored) labels when ``normalize`` (the default; 0 valid
        labels give NaN, as the fork), else the outer count (batch size).
    Backward: dx = (p − onehot(label)) · w · top.diff / n, zero at ignored positions.
    Params: softmax_param.axis=1; loss_param: ignore_label (unset), normalize=true,
        weight_by_label_freqs=false, class_weighting (one per class, needed with the former).
    Bottoms: x (outer, C, inner) around the axis; labels with outer·inner values in [0, C).
    Tops: loss (); optionally prob, shaped like x.
    In place: no.
    """

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        super().layer_setup(bottom, top)
        p = forks.get_dialect("segnet").fork_param(self.param).loss_param
        self.weights: torch.Tensor | None = None
        if p.weight_by_label_freqs:
            self.weights = torch.tensor(list(p.class_weighting), dtype=torch.float32).to(self.dtype)
        loss = self.param.loss_param  # the fork's normalize defaults to true (BVLC's has no default)
        self.per_item = loss.normalize if loss.HasField("normalize") else True

    def softmax_axis(self) -> int:
        return self.param.softmax_param.axis

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        super().reshape(bottom, top)
        if self.weights is not None and len(self.weights) != self.channels:
            raise self.error(f"loss_param.class_weighting has {len(self.weights)} values for {self.channels} "
                             f"classes; give one weight per class")

    def _weights(self, label: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(outer, inner): each position's class weight, 0 where the label is ignored."""
        w = self.weights.to(label.device)[label] if self.weights is not None else torch.ones(
            label.shape, dtype=self.dtype, device=label.device)
        return torch.where(valid, w, 0)

    def _normalizer(self, valid: torch.Tensor) -> torch.Tensor:
        if self.per_item:
            return valid.sum().to(self.dtype)
        return torch.tensor(float(self.outer), dtype=self.dtype)

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        prob = self.compute_prob(bottom, top)
        label, valid = self.labels(bottom)
        log_p = prob.gather(1, label.unsqueeze(1)).squeeze(1).clamp_(min=FLT_MIN).log_()
        top[0].data.copy_(-(log_p * self._weights(label, valid)).sum() / self._normalizer(valid))

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        self.check_no_label_gradient(propagate_down)
        if propagate_down[0]:
            label, valid = self.labels(bottom)
            dx = bottom[0].diff.view(self.outer, self.channels, self.inner)
            dx.copy_(self.prob_view())
            dx.scatter_add_(1, label.unsqueeze(1), -valid.unsqueeze(1).to(dx.dtype))
            dx.mul_(self._weights(label, valid).unsqueeze(1))
            dx.mul_(top[0].diff / self._normalizer(valid))
