from __future__ import annotations

from typing import final

import torch

from recaffe.layer import Blobs, Layer
from recaffe.layers.loss.base import ignore_label, label_geometry, read_labels
from recaffe.registry import LAYERS


class AccuracyBase(Layer):
    """What every Accuracy shares: two bottoms, one or two tops, top_k checked against the classes.

    The per-class top is (C, *per_class_trailing); subclasses give ``forward``.
    """

    exact_num_bottom_blobs = 2
    min_top_blobs = 1
    max_top_blobs = 2
    per_class_trailing: tuple[int, ...] = ()

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        self.top_k = self.param.accuracy_param.top_k
        self.ignore = ignore_label(self.param.accuracy_param)

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        if bottom[1].count() and self.top_k > bottom[0].count() // bottom[1].count():
            raise self.error(
                f"accuracy_param.top_k must be at most the number of classes "
                f"({bottom[0].count() // bottom[1].count()}), got {self.top_k}"
            )
        self.axis, self.outer, self.channels, self.inner = label_geometry(
            self, bottom, self.param.accuracy_param.axis, "the label axis")
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape((self.channels, *self.per_class_trailing))


@LAYERS.register("Accuracy")
@final
class AccuracyLayer(AccuracyBase):
    """Top-k classification accuracy (and optionally the accuracy of each class).

    Forward: an item is correct iff #{k : s_k ≥ s_label} ≤ top_k (ties count against it);
        accuracy = #correct / #valid (0 when no label is valid);
        per class c: #correct with label c / #valid with label c (0 for absent classes).
    Backward: none (asking for a bottom gradient raises, as Caffe's NOT_IMPLEMENTED).
    Params (accuracy_param): top_k=1, axis=1, ignore_label (unset).
    Bottoms: scores (outer, C, inner) around ``axis``; labels with outer·inner values in [0, C).
    Tops: accuracy (); optionally per-class accuracy (C,).
    In place: no.
    """

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        scores = bottom[0].data.view(self.outer, self.channels, self.inner)
        labels = bottom[1].data.view(self.outer, self.inner)
        label, valid = read_labels(self, labels, self.channels, self.ignore)
        truth = scores.gather(1, label.unsqueeze(1))  # (outer, 1, inner)
        correct = (scores >= truth).sum(1) <= self.top_k  # (outer, inner)
        correct &= valid
        count = valid.sum()
        accuracy = correct.sum().to(scores.dtype) / count.clamp(min=1)
        top[0].data.copy_(accuracy)
        if len(top) > 1:
            totals = torch.bincount(label[valid], minlength=self.channels).to(scores.dtype)
            hits = torch.bincount(label[correct], minlength=self.channels).to(scores.dtype)
            torch.div(hits, totals.clamp(min=1), out=top[1].data)  # absent classes: 0 / 1
