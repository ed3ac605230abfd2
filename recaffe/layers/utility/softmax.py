from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs, Layer
from recaffe.math.softmax import softmax
from recaffe.registry import LAYERS


@LAYERS.register("Softmax")
@final
class SoftmaxLayer(Layer):
    """Softmax along one axis: y = exp(x − max_axis x) / Σ_axis exp(x − max_axis x).

    Backward: dx = y ⊙ (dy − Σ_axis dy ⊙ y).
    Params (softmax_param): axis=1 (negative counts from the end), engine (ignored).
    Bottoms: x (any shape); the other axes are independent (outer × inner positions).
    Tops: y, shaped like x.
    In place: yes (backward reads only the top).
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1
    supports_in_place = True

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        b = bottom[0]
        axis = b.canonical_axis(self.param.softmax_param.axis)
        self.dims = (b.count(0, axis), b.shape[axis], b.count(axis + 1))  # (outer, channels, inner)
        top[0].reshape_like(b)

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        softmax(bottom[0].data.view(self.dims), 1, out=top[0].data.view(self.dims))

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        y, dy = top[0].data.view(self.dims), top[0].diff.view(self.dims)
        dot = (dy * y).sum(dim=1, keepdim=True)  # (outer, 1, inner)
        torch.mul(dy - dot, y, out=bottom[0].diff.view(self.dims))
