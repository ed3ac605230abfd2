from __future__ import annotations

from collections.abc import Sequence
from typing import final

import numpy as np

from recaffe.layer import Blobs
from recaffe.layers.neuron.base import NeuronLayer, log_of_base
from recaffe.math.affine import scale_shift
from recaffe.math.floats import f32
from recaffe.registry import LAYERS


@LAYERS.register("Log")
@final
class LogLayer(NeuronLayer):
    """Logarithm with a base, an input scale and an input shift.

    Forward: y = log_base(shift + scale · x) = ln(shift + scale · x) / ln(base)
    Backward: dx = dy · (scale / ln(base)) / (shift + scale · x)
    Params (log_param): base=-1 (means e; otherwise must be > 0 and != 1), scale=1, shift=0.
    Bottoms: x (any shape). Tops: y, shaped like x.
    In place: unsafe (as in Caffe): backward reads x, which an in-place forward overwrote.
    """

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.log_param
        log_base = log_of_base(self, "log_param", p.base)
        if log_base == 0:
            raise self.error(f"log_param.base {p.base} gives log(base) = {log_base}, "
                             "which has no finite inverse")
        self.scale, self.shift = f32(p.scale), f32(p.shift)
        ln = np.float32(log_base)  # the quotients below are float32 divisions, as in Caffe
        self.base_scale = float(np.float32(1) / ln)
        self.backward_scale = float(np.float32(p.scale) / ln)

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        y = scale_shift(bottom[0].data, self.scale, self.shift, top[0].data).log_()
        if self.base_scale != 1:
            y.mul_(self.base_scale)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        dx = scale_shift(bottom[0].data, self.scale, self.shift, bottom[0].diff).reciprocal_()
        if self.backward_scale != 1:
            dx.mul_(self.backward_scale)
        dx.mul_(top[0].diff)
