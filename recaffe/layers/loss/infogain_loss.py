from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.io import blobproto, prototxt
from recaffe.layer import Blobs
from recaffe.layers.loss.base import LOG_THRESHOLD
from recaffe.layers.loss.softmax_base import SoftmaxLossLayer
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS


@LAYERS.register("InfogainLoss")
@final
class InfogainLossLayer(SoftmaxLossLayer):
    """Infogain loss: a multinomial logistic loss weighted by a C×C matrix H, on softmax(x).

    Forward: p = softmax(x) along ``axis``;
        loss = −Σ_valid Σ_l H[label, l] · log(max(p_l, 1e-20)) / normalizer
    Backward: dx_l = (p_l · Σ_k H[label, k] − H[label, l]) · top.diff / normalizer, zero at
        ignored positions. No gradient to the labels or to H.
    Params (infogain_loss_param): source (a binaryproto holding H, used without bottom 2),
        axis=1; loss_param.ignore_label (unset), normalization=VALID (``normalize`` is rejected).
    Bottoms: x (outer, C, inner) around the axis; labels (outer·inner values in [0, C));
        optionally H with C·C values.
    Tops: loss (); optionally prob, shaped like x (shares the internal probabilities).
    In place: no.
    """

    min_bottom_blobs = 2
    max_bottom_blobs = 3
    exact_num_bottom_blobs = -1

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        super().layer_setup(bottom, top)
        if self.param.loss_param.HasField("normalize"):
            raise self.error('loss_param.normalize is deprecated here; use "normalization"')
        self.mode = self.normalization_mode()
        if len(bottom) < 3:
            p = self.param.infogain_loss_param
            if not p.HasField("source"):
                raise self.error("infogain_loss_param.source (the H matrix) must be given "
                                 "when there is no third bottom")
            proto = prototxt.read_binary(p.source, caffe_pb2.BlobProto())
            self.infogain = blobproto.blob_from_proto(proto, dtype=self.dtype, device=self.device)

    def softmax_axis(self) -> int:
        return self.param.infogain_loss_param.axis

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        super().reshape(bottom, top)
        count = (bottom[2] if len(bottom) > 2 else self.infogain).count()
        if count != self.channels * self.channels:
            raise self.error(f"H must be {self.channels}x{self.channels}, got {count} values")

    def allow_force_backward(self, bottom_index: int) -> bool:
        # NOTE: Caffe lets force_backward reach H (bottom 2) and then aborts in Backward; here
        # H simply gets no gradient.
        return bottom_index == 0

    def _h(self, bottom: Blobs) -> torch.Tensor:
        """H as (C, C), from bottom 2 or the source file."""
        h = bottom[2].data if len(bottom) > 2 else self.infogain.data
        return h.reshape(self.channels, self.channels)

    def _h_rows(self, bottom: Blobs, label: torch.Tensor) -> torch.Tensor:
        """H[label] laid out like the scores: (outer, C, inner)."""
        return self._h(bottom)[label].permute(0, 2, 1)

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        prob = self.compute_prob(bottom, top)  # (outer, C, inner)
        label, valid = self.labels(bottom)  # (outer, inner)
        weighted = self._h_rows(bottom, label) * prob.clamp(min=LOG_THRESHOLD).log()
        loss = -torch.where(valid.unsqueeze(1), weighted, 0).sum()
        top[0].data.copy_(loss / self.normalizer(self.mode, self.outer, self.inner, int(valid.sum())))

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        self.check_no_label_gradient(propagate_down)
        if len(propagate_down) > 2 and propagate_down[2]:
            raise self.error("cannot backpropagate to the infogain matrix (bottom 2)")
        if propagate_down[0]:
            label, valid = self.labels(bottom)
            rows = self._h_rows(bottom, label)  # (outer, C, inner)
            dx = bottom[0].diff.view(self.outer, self.channels, self.inner)
            torch.mul(self.prob_view(), rows.sum(1, keepdim=True), out=dx)
            dx.sub_(rows)
            dx.masked_fill_(~valid.unsqueeze(1), 0)
            normalizer = self.normalizer(self.mode, self.outer, self.inner, int(valid.sum()))
            dx.mul_(self.loss_scale(top[0], normalizer))
