from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs
from recaffe.layers.neuron.base import NeuronLayer
from recaffe.registry import LAYERS


@LAYERS.register("TanH")
@final
class TanHLayer(NeuronLayer):
    """Hyperbolic tangent (saturates to ±1 for large |x|, never overflows).

    Forward: y = tanh(x)
    Backward: dx = dy · (1 − y²)
    Params (tanh_param): engine (ignored).
    Bottoms: x (any shape). Tops: y, shaped like x.
    In place: yes (backward reads only y).
    """

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        torch.tanh(bottom[0].data, out=top[0].data)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        y = top[0].data
        torch.mul(top[0].diff, 1 - y * y, out=bottom[0].diff)
