from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs
from recaffe.layers.neuron.base import NeuronLayer
from recaffe.math.affine import scale_shift
from recaffe.math.floats import f32
from recaffe.registry import LAYERS


@LAYERS.register("Power")
@final
class PowerLayer(NeuronLayer):
    """Power of an affine function of the input.

    Forward: y = (shift + scale · x)^power; when power · scale == 0 the input is ignored and
        y = 1 if power == 0, else shift^power.
    Backward: dx = dy · power · scale · (shift + scale · x)^(power − 1), computed as Caffe does:
        0 when power · scale == 0 (dy ignored); dy · scale when power == 1;
        dy · (2·scale²·x + 2·scale·shift) when power == 2; dy · power · y / x when shift == 0;
        otherwise dy · power · scale · y / (shift + scale · x).
    Params (power_param): power=1, scale=1, shift=0.
    Bottoms: x (any shape). Tops: y, shaped like x.
    In place: unsafe (as in Caffe): backward reads x, which an in-place forward overwrote.
    """

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.power_param
        self.power, self.scale, self.shift = p.power, p.scale, p.shift  # float32 values
        self.diff_scale = f32(self.power * self.scale)
        if self.diff_scale == 0:
            # shift^power in double, as C's pow (no exception for 0^-1 or (-2)^0.5); 0th power is 1
            value = torch.tensor(self.shift, dtype=torch.float64).pow(self.power)
            self.constant = 1.0 if self.power == 0 else float(value)

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        y = top[0].data
        if self.diff_scale == 0:
            y.fill_(self.constant)
            return
        scale_shift(bottom[0].data, self.scale, self.shift, y)
        if self.power != 1:
            y.pow_(self.power)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        x, dx = bottom[0].data, bottom[0].diff
        if self.diff_scale == 0:
            dx.zero_()
            return
        if self.power == 1:
            dx.fill_(self.diff_scale)
        elif self.power == 2:
            torch.mul(x, f32(self.diff_scale * self.scale), out=dx)
            if self.shift != 0:
                dx.add_(f32(self.diff_scale * self.shift))
        elif self.shift == 0:
            torch.div(top[0].data, x, out=dx).mul_(self.power)
        else:
            torch.div(top[0].data, scale_shift(x, self.scale, self.shift, dx), out=dx)
            if self.diff_scale != 1:
                dx.mul_(self.diff_scale)
        dx.mul_(top[0].diff)
