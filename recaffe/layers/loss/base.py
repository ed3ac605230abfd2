"""LossLayer: the base of loss layers (scalar top, default loss_weight 1, no gradient to labels).

Also the label reading shared by the classification losses and Accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from recaffe.blob import Blob
from recaffe.layer import Blobs, Layer
from recaffe.proto import caffe_pb2

Normalization = caffe_pb2.LossParameter.NormalizationMode

FLT_MIN = torch.finfo(torch.float32).tiny  # SoftmaxWithLoss's floor under log(p)
LOG_THRESHOLD = 1e-20  # Caffe's kLOG_THRESHOLD: the floor of the other log-losses


def ignore_label(param: caffe_pb2.LossParameter | caffe_pb2.AccuracyParameter) -> int | None:
    """The ``ignore_label`` field, or None when it is unset."""
    return param.ignore_label if param.HasField("ignore_label") else None


def read_labels(
    layer: Layer, labels: torch.Tensor, num_classes: int, ignore: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class labels as Caffe reads them: float values truncated to int (``static_cast<int>``).

    Returns ``(index, valid)``: ``index`` holds the labels with ignored ones replaced by 0 (safe
    for gathers), ``valid`` is False where the label equals ``ignore``. A label outside
    ``[0, num_classes)`` that is not ignored raises (Caffe only DCHECKs, then reads out of bounds).
    """
    index = labels.long()
    if ignore is None:  # the common case, in two reductions
        valid = torch.ones_like(index, dtype=torch.bool)
        in_range = index.numel() == 0 or (int(index.amin()) >= 0 and int(index.amax()) < num_classes)
        if in_range:
            return index, valid
    else:
        valid = index != ignore
    bad = valid & ((index < 0) | (index >= num_classes))
    if bool(bad.any()):
        value = float(labels[bad].reshape(-1)[0])
        hint = "" if ignore is None else f" and is not ignore_label {ignore}"
        raise layer.error(f"label {value:g} is outside [0, {num_classes}){hint}")
    return torch.where(valid, index, 0), valid


def label_geometry(layer: Layer, bottom: Blobs, axis: int, what: str) -> tuple[int, int, int, int]:
    """Canonical ``axis`` of the scores (bottom 0) and their ``(outer, channels, inner)`` around it;
    bottom 1 must hold ``outer·inner`` labels (``what`` names the axis in the error)."""
    axis = bottom[0].canonical_axis(axis)
    outer, channels, inner = bottom[0].count(0, axis), bottom[0].shape[axis], bottom[0].count(axis + 1)
    if outer * inner != bottom[1].count():
        raise layer.error(
            f"number of labels must match number of predictions: scores of shape {bottom[0].shape} "
            f"with {what} {axis} need {outer * inner} labels, got {bottom[1].count()}")
    return axis, outer, channels, inner


class LossLayer(Layer):
    """Two bottoms (predictions, targets) sharing the batch axis, one 0-axis scalar top.

    The top is created automatically when omitted, and gets ``loss_weight: 1`` unless the
    prototxt gives weights (so a loss layer with two tops must give both). ``force_backward``
    never reaches bottom 1 (the labels). Backward scales by ``top[0].diff`` (the loss weight
    Caffe keeps there) over the normalizer.
    """

    exact_num_bottom_blobs = 2
    exact_num_top_blobs = 1
    auto_top_blobs = True

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        if not self.param.loss_weight:
            self.param.loss_weight.append(1.0)

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        if not (bottom[0].num_axes and bottom[1].num_axes):
            raise self.error(
                f"the data and label blobs need a first axis (shapes {bottom[0].shape} and "
                f"{bottom[1].shape})"
            )
        if bottom[0].shape[0] != bottom[1].shape[0]:
            raise self.error(
                f"the data and label blobs must have the same first dimension "
                f"({bottom[0].shape} vs {bottom[1].shape})"
            )
        top[0].reshape(())

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 1

    def check_no_label_gradient(self, propagate_down: Sequence[bool]) -> None:
        """Caffe aborts when asked for the gradient of the labels; so do we, with a message."""
        if propagate_down[1]:
            raise self.error("cannot backpropagate to the label input (bottom 1)")

    @staticmethod
    def loss_scale(top: Blob, normalizer: float) -> torch.Tensor:
        """The backward scale: the loss weight held in ``top.diff`` over the normalizer."""
        return top.diff / normalizer

    def normalization_mode(self, default: int = caffe_pb2.LossParameter.VALID) -> int:
        """``loss_param.normalization``, else the deprecated ``normalize`` (true: VALID, false:
        BATCH_SIZE), else ``default``."""
        p = self.param.loss_param
        if p.HasField("normalization"):
            return p.normalization
        if p.HasField("normalize"):
            return caffe_pb2.LossParameter.VALID if p.normalize else caffe_pb2.LossParameter.BATCH_SIZE
        return default

    @staticmethod
    def normalizer(mode: int, outer: int, inner: int, valid_count: int) -> float:
        """Caffe's get_normalizer: FULL outer·inner, VALID the valid count (all when -1),
        BATCH_SIZE outer, NONE 1; never below 1."""
        if mode == caffe_pb2.LossParameter.FULL:
            value = outer * inner
        elif mode == caffe_pb2.LossParameter.VALID:
            value = outer * inner if valid_count == -1 else valid_count
        elif mode == caffe_pb2.LossParameter.BATCH_SIZE:
            value = outer
        elif mode == caffe_pb2.LossParameter.NONE:
            value = 1
        else:
            raise ValueError(f"unknown loss normalization mode {mode}")
        return float(max(1, value))

