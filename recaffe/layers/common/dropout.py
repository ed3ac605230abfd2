from __future__ import annotations

from collections.abc import Sequence
from typing import final

import numpy as np
import torch

from recaffe import rng
from recaffe.layer import Blobs, Layer
from recaffe.layers.neuron.base import NeuronLayer
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS


def keep_and_scale(layer: Layer) -> tuple[float, float]:
    """Dropout's keep probability 1 − r (a double, as Caffe passes it to bernoulli<double>), scale 1/(1 − r).

    r is ``dropout_param.dropout_ratio`` read as Caffe's float. Caffe only DCHECKs 0 < r < 1; r = 0 is
    a valid identity, r = 1 would give 0 · inf = NaN, so r must be in [0, 1).
    """
    ratio = float(np.float32(layer.param.dropout_param.dropout_ratio))
    if not 0 <= ratio < 1:
        raise layer.error(f"dropout_param.dropout_ratio must be in [0, 1), got {ratio}")
    return 1.0 - ratio, 1.0 / (1.0 - ratio)  # torch rounds the scale to the tensor's dtype first


def draw_mask(x: torch.Tensor, keep: float) -> torch.Tensor:
    """Caffe's dropout mask for ``x``: Bernoulli(keep) draws in memory order from Caffe's stream."""
    words = rng.get_rng().bernoulli_double(x.numel(), keep)
    return torch.from_numpy(words).to(device=x.device, dtype=x.dtype).view(x.shape)


@LAYERS.register("Dropout")
@final
class DropoutLayer(NeuronLayer):
    """Inverted dropout: in TRAIN, zero each input with probability r and scale the rest by 1/(1−r).

    Forward (TRAIN): mask ~ Bernoulli(1 − r), one draw per element in memory order from Caffe's
        random stream on every forward (bit-exact with Caffe's CPU);
        y = (x · mask) · scale, scale = 1 / (1 − r) in double, rounded to the blob's dtype
        (1.4285715f for r = 0.3, as Caffe's float scale_).
    Forward (TEST): y = x (no draws).
    Backward: TRAIN dx = (dy · mask) · scale; TEST dx = dy.
    The phase is the layer's own (``phase`` of the LayerParameter, else the net's).
    Params (dropout_param): dropout_ratio=0.5, in [0, 1).
    Bottoms: x (any shape). Tops: y, shaped like x.
    In place: yes.
    """

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        self.keep, self.scale = keep_and_scale(self)

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        x, y = bottom[0].data, top[0].data
        if self.phase != caffe_pb2.TRAIN:
            if top[0] is not bottom[0]:
                y.copy_(x)
            return
        self.mask = draw_mask(x, self.keep)
        torch.mul(x, self.mask, out=y).mul_(self.scale)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        dy, dx = top[0].diff, bottom[0].diff
        if self.phase != caffe_pb2.TRAIN:
            if top[0] is not bottom[0]:
                dx.copy_(dy)
            return
        torch.mul(dy, self.mask, out=dx).mul_(self.scale)
