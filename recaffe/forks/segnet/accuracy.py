from __future__ import annotations

from typing import final

import torch

from recaffe.layer import Blobs
from recaffe.layers.loss.accuracy import AccuracyBase
from recaffe.registry import LAYERS


@LAYERS.register("Accuracy", dialect="segnet")
@final
class AccuracyLayer(AccuracyBase):
    """SegNet's Accuracy: top-k accuracy and, with a second top, each class's accuracy as the fork has it.

    Forward: the scores of an item are ordered by (score, class index), greatest first (the fork's
        partial_sort of pairs: a tie goes to the larger index); the item is correct iff its label
        is among the first top_k. accuracy = #correct / #valid (NaN when none is valid, as the
        fork). Per class c: #correct with label c / #valid with label c, and 1 for a class with
        no valid label (the fork's choice; BVLC gives 0). A label outside [0, C) that is not
        ignored (CamVid's void class 11 in SegNet's train nets, whose Accuracy sets no
        ignore_label) counts as a miss and in no class, as the fork's release build reads it (it
        only DCHECKs).
    Backward: none.
    Params (accuracy_param): top_k=1, axis=1, ignore_label (unset).
    Bottoms: scores (outer, C, inner) around ``axis``; labels with outer·inner values in [0, C).
    Tops: accuracy (); optionally per-class accuracy (C, 1, 1, 1).
    In place: no.
    """

    per_class_trailing = (1, 1, 1)

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        scores = bottom[0].data.view(self.outer, self.channels, self.inner)
        label = bottom[1].data.view(self.outer, self.inner).long()  # static_cast<int>
        valid = label != self.ignore if self.ignore is not None else torch.ones_like(label, dtype=torch.bool)
        known = (label >= 0) & (label < self.channels)
        label = torch.where(known, label, 0)
        valid_known = valid & known
        truth = scores.gather(1, label.unsqueeze(1))  # (outer, 1, inner)
        index = torch.arange(self.channels, device=scores.device).view(1, -1, 1)
        ahead = (scores > truth) | ((scores == truth) & (index > label.unsqueeze(1)))
        correct = (ahead.sum(1) < self.top_k) & valid_known
        top[0].data.copy_(correct.sum().to(scores.dtype) / valid.sum().to(scores.dtype))
        if len(top) > 1:
            totals = torch.bincount(label[valid_known], minlength=self.channels).to(scores.dtype)
            hits = torch.bincount(label[correct], minlength=self.channels).to(scores.dtype)
            per_class = torch.where(totals > 0, hits / totals.clamp(min=1), 1.0)
            top[1].data.view(-1).copy_(per_class)
