from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs
from recaffe.layers.neuron.base import NeuronLayer
from recaffe.math import layout
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
        # in the layout the bottom is held in (channels-last after a convolution or pooling)
        slope = self.param.relu_param.negative_slope
        x = bottom[0].strided_data()
        y = x if top[0] is bottom[0] else layout.output(top[0], x)  # the top in the bottom's layout
        if slope == 0:
            torch.clamp(x, min=0, out=y)
        else:
            torch.where(x > 0, x, x * slope, out=y)
        layout.store(top[0], y)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        slope = self.param.relu_param.negative_slope
        y = (top[0] if slope >= 0 else bottom[0]).strided_data()
        dy = top[0].strided_diff()
        # the mask as 1.0/0.0 straight from the comparison: multiplying by a bool tensor in place
        # would first copy it to floats
        factor = torch.gt(y, 0, out=torch.empty_like(dy))
        if slope != 0:
            factor.add_((1 - factor) * slope)
        # a product, not a select, so zeroed gradients keep their sign (-0.0) as in Caffe
        if top[0] is bottom[0]:
            dy.mul_(factor)
        else:
            layout.store(bottom[0], factor.mul_(dy), diff=True)
