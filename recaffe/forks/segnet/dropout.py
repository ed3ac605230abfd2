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


@LAYERS.register("Dropout", dialect="segnet")
@final
class DropoutLayer(NeuronLayer):
    """The SegNet fork's Dropout: BVLC's, plus ``sample_weights_test`` (Bayesian SegNet's MC dropout).

    With sample_weights_test=true the layer drops units in the TEST phase too, exactly as in TRAIN:
    a fresh mask ~ Bernoulli(1 − r) from Caffe's random stream on every forward (BVLC's draws, so a
    seeded run repeats its samples), y = (x · mask) · 1/(1 − r), dx = (dy · mask) · 1/(1 − r).
    Otherwise it is BVLC's Dropout bit for bit (TEST: y = x).
    Params (dropout_param): dropout_ratio=0.5 in [0, 1), sample_weights_test=false.
    Bottoms: x. Tops: y, shaped like x. In place: yes.
    """

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        self.keep, self.scale = keep_and_scale(self)
        sample = forks.get_dialect("segnet").fork_param(self.param).dropout_param.sample_weights_test
        self.sampling = self.phase == caffe_pb2.TRAIN or sample
        self.identity_at_test = not sample  # deploy mode skips it only then (recaffe.deploy)

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        x, y = bottom[0].data, top[0].data
        if self.sampling:
            self.mask = draw_mask(x, self.keep)
            torch.mul(x, self.mask, out=y).mul_(self.scale)
        elif y is not x:
            y.copy_(x)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        dy, dx = top[0].diff, bottom[0].diff
        if self.sampling:
            torch.mul(dy, self.mask, out=dx).mul_(self.scale)
        elif dx is not dy:
            dx.copy_(dy)
