from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs
from recaffe.layers.neuron.base import NeuronLayer
from recaffe.registry import LAYERS


@LAYERS.register("Swish")
@final
class SwishLayer(NeuronLayer):
    """Swish (SiLU for β = 1): the input gated by its own sigmoid.

    Forward: s = σ(β·x) (kept for the backward; see SigmoidLayer on its form);  y = x · s
    Backward: dx = dy · (β·y + s · (1 − β·y))
    Params (swish_param): beta=1.
    Bottoms: x (any shape). Tops: y, shaped like x.
    In place: yes (backward reads y and the saved s).
    """

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        x = bottom[0].data
        self.sigmoid_output = torch.sigmoid(x * self.param.swish_param.beta)
        torch.mul(x, self.sigmoid_output, out=top[0].data)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        beta_y = top[0].data * self.param.swish_param.beta
        slope = torch.mul(self.sigmoid_output, 1 - beta_y).add_(beta_y)
        torch.mul(top[0].diff, slope, out=bottom[0].diff)  # in place, top.diff is bottom.diff
