from __future__ import annotations

from typing import final

import torch

from recaffe.layer import Blobs
from recaffe.layers.neuron.base import NeuronLayer
from recaffe.registry import LAYERS


@LAYERS.register("ReLU")
@final
class ReLULayer(NeuronLayer):
    """Rectified linear unit, optionally leaky.

    Forward: y = max(x, 0) + negative_slope · min(x, 0)
    Backward: dx = dy · (1[x > 0] + negative_slope · 1[x <= 0])
    NOTE: the gradient at exactly 0 takes the negative side, as in Caffe.
    Params (relu_param): negative_slope=0, engine (ignored).
    Bottoms: x (any shape). Tops: y, shaped like x.
    In place: yes (backward reads the sign of y, which equals that of x).
    """

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        slope = self.param.relu_param.negative_slope
        x, y = bottom[0].data, top[0].data
        if slope == 0:
            torch.clamp(x, min=0, out=y)
        else:
            torch.where(x > 0, x, x * slope, out=y)

    def backward(self, top: Blobs, propagate_down: list[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        slope = self.param.relu_param.negative_slope
        positive = (top[0].data > 0 if slope >= 0 else bottom[0].data > 0).to(top[0].diff.dtype)
        if slope != 0:
            positive.add_((1 - positive) * slope)
        # a product, not a select, so zeroed gradients keep their sign (-0.0) as in Caffe
        torch.mul(top[0].diff, positive, out=bottom[0].diff)
