"""LossLayer: the base of loss layers (scalar top, default loss_weight 1, no gradient to labels)."""

from __future__ import annotations

from recaffe.layer import Blobs, Layer
from recaffe.proto import caffe_pb2

Normalization = caffe_pb2.LossParameter.NormalizationMode


class LossLayer(Layer):
    """Two bottoms (predictions, targets) sharing the batch axis, one 0-axis scalar top.

    The top is created automatically when omitted, and gets ``loss_weight: 1`` unless the
    prototxt gives weights. ``force_backward`` never reaches bottom 1 (the labels).
    """

    exact_num_bottom_blobs = 2
    exact_num_top_blobs = 1
    auto_top_blobs = True

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        if not self.param.loss_weight:
            self.param.loss_weight.append(1.0)

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        if bottom[0].shape[:1] != bottom[1].shape[:1]:
            raise self.error(
                f"the data and label blobs must have the same first dimension "
                f"({bottom[0].shape} vs {bottom[1].shape})"
            )
        top[0].reshape(())

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 1

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
