from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs
from recaffe.layers.loss.base import LossLayer, read_labels
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS


@LAYERS.register("HingeLoss")
@final
class HingeLossLayer(LossLayer):
    """One-versus-all hinge loss over K scores per item.

    Forward: with s_k = −1 for the label k and +1 otherwise, l_k = max(0, 1 + s_k·x_k);
        L1: loss = Σ l / N ;  L2: loss = Σ l² / N
    Backward: L1: dx = s · 1[l > 0] · top.diff / N ;  L2: dx = 2 s · l · top.diff / N
        (from the margins saved by the forward)
    Params (hinge_loss_param): norm=L1 (L1 or L2).
    Bottoms: x (N, …), K = count / N; labels: the first N values of bottom 1, in [0, K).
    Tops: loss ().
    In place: no.
    """

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        super().reshape(bottom, top)
        self.num = bottom[0].shape[0]
        self.dim = bottom[0].count() // self.num if self.num else 0

    def _signs(self, bottom: Blobs) -> torch.Tensor:
        """−1 at each item's label, +1 elsewhere: (N, K)."""
        label, _ = read_labels(self, bottom[1].data.reshape(-1)[: self.num], self.dim)
        signs = torch.ones(self.num, self.dim, dtype=bottom[0].dtype, device=bottom[0].device)
        return signs.scatter_(1, label.unsqueeze(1), -1.0)

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        x = bottom[0].data.reshape(self.num, self.dim)
        self.margin = (x * self._signs(bottom)).add_(1).clamp_(min=0)  # (N, K)
        if self.param.hinge_loss_param.norm == caffe_pb2.HingeLossParameter.L1:
            loss = self.margin.sum()
        else:
            loss = torch.dot(self.margin.reshape(-1), self.margin.reshape(-1))
        top[0].data.copy_(loss / self.num)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        self.check_no_label_gradient(propagate_down)
        if propagate_down[0]:
            dx = bottom[0].diff.view(self.num, self.dim)
            signs = self._signs(bottom)
            if self.param.hinge_loss_param.norm == caffe_pb2.HingeLossParameter.L1:
                torch.mul(torch.sign(self.margin), signs, out=dx)
                dx.mul_(top[0].diff / self.num)
            else:
                torch.mul(self.margin, signs, out=dx)
                dx.mul_(top[0].diff * 2 / self.num)
