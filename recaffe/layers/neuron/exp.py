from __future__ import annotations

from collections.abc import Sequence
from typing import final

import numpy as np
import torch

from recaffe.layer import Blobs
from recaffe.layers.neuron.base import NeuronLayer, log_of_base
from recaffe.math.floats import f32
from recaffe.registry import LAYERS


@LAYERS.register("Exp")
@final
class ExpLayer(NeuronLayer):
    """Exponential with a base, an input scale and an input shift.

    Forward: y = base^(shift + scale · x), computed as outer · e^(inner · x) with
        inner = ln(base) · scale and outer = base^shift (float32 constants, as in Caffe)
    Backward: dx = dy · y · inner
    Params (exp_param): base=-1 (means e; otherwise must be > 0), scale=1, shift=0.
    Bottoms: x (any shape). Tops: y, shaped like x.
    In place: yes (backward reads only y).
    """

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.exp_param
        log_base = log_of_base(self, "exp_param", p.base)
        base, shift = f32(p.base), f32(p.shift)
        self.inner_scale = float(np.float32(log_base) * np.float32(p.scale))  # float32 product
        # base^shift in double (inf rather than an exception when it overflows), kept as float32
        shift64 = torch.tensor(shift, dtype=torch.float64)
        outer = shift64.exp() if base == -1 else torch.pow(base, shift64)
        self.outer_scale = 1.0 if shift == 0 else float(outer.float())

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        y = top[0].data
        if self.inner_scale == 1:
            torch.exp(bottom[0].data, out=y)
        else:
            torch.mul(bottom[0].data, self.inner_scale, out=y).exp_()
        if self.outer_scale != 1:
            y.mul_(self.outer_scale)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        dx = torch.mul(top[0].data, top[0].diff, out=bottom[0].diff)
        if self.inner_scale != 1:
            dx.mul_(self.inner_scale)
