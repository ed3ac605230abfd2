from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe import forks
from recaffe.layer import Blobs
from recaffe.layers.common.dropout import draw_mask, keep_and_scale
from recaffe.layers.neuron.base import NeuronLayer
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS


@LAYERS.register("Dropout", dialect="faster_rcnn")
@final
class DropoutLayer(NeuronLayer):
    """The Fast/Faster R-CNN fork's Dropout: BVLC's, plus ``scale_train``.

    scale_train=true (the default) is BVLC's inverted dropout. scale_train=false scales at test
    time instead: TRAIN y = x · mask, dx = dy · mask; TEST y = x · (1/scale), dx = dy · (1/scale),
    with scale = 1/(1 − r) (the fork's caffe_scal by 1./scale_).
    The mask is BVLC's (same draws from Caffe's stream, so scale_train=true is bit-identical).
    Params (dropout_param): dropout_ratio=0.5 in [0, 1), scale_train=true.
    Bottoms: x. Tops: y, shaped like x. In place: yes.
    """

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        self.keep, self.scale = keep_and_scale(self)
        self.scale_train = forks.get_dialect("faster_rcnn").fork_param(self.param).dropout_param.scale_train
        self.identity_at_test = self.scale_train  # else TEST scales: deploy mode must run it (recaffe.deploy)

    def _factor(self, train: bool) -> float:
        if train:
            return self.scale if self.scale_train else 1.0
        return 1.0 if self.scale_train else 1.0 / self.scale

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        x, y = bottom[0].data, top[0].data
        train = self.phase == caffe_pb2.TRAIN
        if train:
            self.mask = draw_mask(x, self.keep)
            torch.mul(x, self.mask, out=y)
        elif y is not x:
            y.copy_(x)
        if self._factor(train) != 1.0:
            y.mul_(self._factor(train))

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        dy, dx = top[0].diff, bottom[0].diff
        train = self.phase == caffe_pb2.TRAIN
        if train:
            torch.mul(dy, self.mask, out=dx)
        elif dx is not dy:
            dx.copy_(dy)
        if self._factor(train) != 1.0:
            dx.mul_(self._factor(train))
