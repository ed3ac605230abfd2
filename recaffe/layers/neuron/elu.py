from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs
from recaffe.layers.neuron.base import NeuronLayer
from recaffe.registry import LAYERS


@LAYERS.register("ELU")
@final
class ELULayer(NeuronLayer):
    """Exponential linear unit.

    Forward: y = max(x, 0) + α · (e^min(x, 0) − 1)
    Backward: dx = dy if x > 0, else dy · (α + y)
    Params (elu_param): alpha=1.
    Bottoms: x (any shape). Tops: y, shaped like x.
    In place: yes for α >= 0 (backward reads x, whose sign y keeps; as in Caffe).
    """

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        alpha = self.param.elu_param.alpha
        x = bottom[0].data
        negative = torch.clamp(x, max=0).expm1_().mul_(alpha)
        torch.clamp(x, min=0, out=top[0].data).add_(negative)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        alpha = self.param.elu_param.alpha
        dy = top[0].diff
        torch.where(bottom[0].data > 0, dy, dy * (top[0].data + alpha), out=bottom[0].diff)
