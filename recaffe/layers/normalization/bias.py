from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs, Layer
from recaffe.math import broadcast
from recaffe.registry import LAYERS


@LAYERS.register("Bias")
@final
class BiasLayer(Layer):
    """Adds a bias broadcast over a run of axes: y = x + b.

    The bias b is bottom[1], or a learned blob of shape ``x.shape[axis : axis + num_axes]``;
    it applies to axes ``[axis, axis + b.num_axes)`` of x (a scalar b applies everywhere).
    Backward: dx = dy ;  db = Σ_{outer, inner} dy (accumulated for the learned blob, assigned
        for bottom[1]).
    Params (bias_param): axis=1, num_axes=1 (−1: to the end; 0: a scalar), filler (constant 0).
        axis and num_axes only shape the learned blob; with two bottoms, bottom[1]'s shape counts.
    Bottoms: x (any shape) [, b (a run of x's dims, or a scalar)].
    Tops: y, shaped like x.
    In place: yes.
    """

    min_bottom_blobs = 1
    max_bottom_blobs = 2
    exact_num_top_blobs = 1
    supports_in_place = True

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.bias_param
        if len(bottom) == 1 and not self.blobs:
            shape = broadcast.operand_shape(self, bottom[0], p.axis, p.num_axes)
            self.blobs = [self.new_blob(shape, p.filler)]
        self.param_propagate_down = [True] * len(self.blobs)

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        bias = bottom[1] if len(bottom) > 1 else self.blobs[0]
        self.dims = broadcast.broadcast_dims(self, bottom[0], bias, self.param.bias_param.axis)
        if top[0] is not bottom[0]:
            top[0].reshape_like(bottom[0])

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        outer, dim, inner = self.dims
        bias = (bottom[1] if len(bottom) > 1 else self.blobs[0]).data.view(1, dim, 1)
        torch.add(bottom[0].data.view(outer, dim, inner), bias, out=top[0].data.view(outer, dim, inner))

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        dy = top[0].diff.view(self.dims)  # (outer, dim, inner)
        if len(bottom) > 1 and propagate_down[1]:
            torch.sum(dy, dim=(0, 2), out=bottom[1].diff.view(-1))
        if len(bottom) == 1 and self.param_propagate_down[0]:
            self.blobs[0].diff.view(-1).add_(dy.sum(dim=(0, 2)))
        if propagate_down[0] and bottom[0] is not top[0]:
            bottom[0].diff.copy_(top[0].diff)
