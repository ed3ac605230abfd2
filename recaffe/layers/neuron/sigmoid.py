from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs
from recaffe.layers.neuron.base import NeuronLayer
from recaffe.registry import LAYERS


@LAYERS.register("Sigmoid")
@final
class SigmoidLayer(NeuronLayer):
    """Logistic function.

    Forward: y = σ(x) = 1 / (1 + e^−x), which never overflows.
        NOTE: Caffe writes it 0.5·tanh(0.5x) + 0.5 evaluated in double; torch.sigmoid in float32
        agrees with that within 2 ulps for x > −15 (below, Caffe's double form loses relative
        precision and returns 0 under about −37), whereas the tanh form in float32 loses all
        relative precision as σ(x) → 0. It is also the faster kernel.
    Backward: dx = dy · y · (1 − y)
    Params (sigmoid_param): engine (ignored).
    Bottoms: x (any shape). Tops: y, shaped like x.
    In place: yes (backward reads only y).
    """

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        torch.sigmoid(bottom[0].data, out=top[0].data)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        y = top[0].data
        torch.mul(top[0].diff, y, out=bottom[0].diff).mul_(1 - y)
