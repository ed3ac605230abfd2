from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs
from recaffe.layers.neuron.base import NeuronLayer
from recaffe.registry import LAYERS


@LAYERS.register("AbsVal")
@final
class AbsValLayer(NeuronLayer):
    """Absolute value.

    Forward: y = |x|
    Backward: dx = dy · sign(x), with sign(0) = 0
    Params: none.
    Bottoms: x (any shape). Tops: y, shaped like x.
    In place: no (Caffe refuses it: backward needs the sign of x).
    """

    supports_in_place = False

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        torch.abs(bottom[0].data, out=top[0].data)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        torch.sign(bottom[0].data, out=bottom[0].diff).mul_(top[0].diff)
