from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs
from recaffe.layers.neuron.base import NeuronLayer
from recaffe.registry import LAYERS


@LAYERS.register("Clip")
@final
class ClipLayer(NeuronLayer):
    """Clamp to [min, max].

    Forward: y = max(min, min(x, max))  (as Caffe: NaN becomes min, and min > max gives min)
    Backward: dx = dy · 1[min <= x <= max]
    Params (clip_param): min, max (both required).
    Bottoms: x (any shape). Tops: y, shaped like x.
    In place: unsafe (as in Caffe): backward reads x, which an in-place forward overwrote.
    """

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.clip_param
        missing = [name for name in ("min", "max") if not p.HasField(name)]
        if missing:
            raise self.error(f"clip_param.{' and '.join(missing)} must be given (required fields)")

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.clip_param
        x, y = bottom[0].data, top[0].data
        upper = torch.where(x > p.max, p.max, x)
        torch.where(upper > p.min, upper, upper.new_full((), p.min), out=y)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        p = self.param.clip_param
        x = bottom[0].data
        inside = ((x >= p.min) & (x <= p.max)).to(x.dtype)
        torch.mul(top[0].diff, inside, out=bottom[0].diff)
