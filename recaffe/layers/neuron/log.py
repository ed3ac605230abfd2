from __future__ import annotations

import math
from collections.abc import Sequence
from typing import final

import numpy as np

from recaffe.layer import Blobs
from recaffe.layers.neuron.base import NeuronLayer
from recaffe.math.affine import scale_shift
from recaffe.registry import LAYERS

F32 = np.float32


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
        base = F32(p.base)
        natural = base == F32(-1)
        if not natural and not base > 0:
            raise self.error(f"log_param.base must be > 0 (or -1 for e), got {p.base}")
        log_base = F32(1) if natural else F32(math.log(base))
        if not math.isfinite(log_base) or log_base == 0:
            raise self.error(f"log_param.base {p.base} gives log(base) = {log_base}, "
                             "which has no finite inverse")
        self.scale, self.shift = float(F32(p.scale)), float(F32(p.shift))
        self.base_scale = float(F32(1) / log_base)
        self.backward_scale = float(F32(p.scale) / log_base)

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
