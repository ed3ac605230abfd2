"""SoftmaxLossLayer: the base of the losses that apply a softmax to class scores first."""

from __future__ import annotations

import torch

from recaffe.layer import Blobs
from recaffe.layers.loss.base import LossLayer, ignore_label, label_geometry, read_labels
from recaffe.math.softmax import softmax


class SoftmaxLossLayer(LossLayer):
    """A loss over class scores through an internal softmax (SoftmaxWithLoss, InfogainLoss).

    The softmax runs along ``softmax_axis()``: scores ``(outer, C, inner)`` around that axis and
    ``outer·inner`` labels, of which ``loss_param.ignore_label`` (``self.ignore``) is skipped. The
    probabilities live in ``self.prob``; an optional top[1] shares their data, as Caffe's
    ShareData does.
    """

    exact_num_top_blobs = -1
    min_top_blobs = 1
    max_top_blobs = 2

    def softmax_axis(self) -> int:
        """The softmax axis field of this type's parameters (before canonicalisation)."""
        raise NotImplementedError

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        super().layer_setup(bottom, top)
        self.ignore = ignore_label(self.param.loss_param)
        self.prob = self.new_blob(bottom[0].shape)

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        super().reshape(bottom, top)
        self.axis, self.outer, self.channels, self.inner = label_geometry(
            self, bottom, self.softmax_axis(), "the softmax on axis")
        self.prob.reshape_like(bottom[0])
        if len(top) > 1:
            top[1].reshape_like(bottom[0])

    def compute_prob(self, bottom: Blobs, top: Blobs) -> torch.Tensor:
        """Softmax of bottom 0 into ``self.prob`` (shared with top[1]); returns (outer, C, inner)."""
        softmax(bottom[0].data, self.axis, self.prob.data)
        if len(top) > 1:
            top[1].share_data(self.prob)
        return self.prob_view()

    def prob_view(self) -> torch.Tensor:
        return self.prob.data.view(self.outer, self.channels, self.inner)

    def labels(self, bottom: Blobs) -> tuple[torch.Tensor, torch.Tensor]:
        """``read_labels`` of bottom 1 as (outer, inner), skipping ``self.ignore``."""
        return read_labels(self, bottom[1].data.view(self.outer, self.inner), self.channels, self.ignore)
