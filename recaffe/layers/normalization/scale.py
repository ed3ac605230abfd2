from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.blob import Blob
from recaffe.layer import Blobs, Layer
from recaffe.layers.normalization.bias import BiasLayer
from recaffe.math import broadcast
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS


@LAYERS.register("Scale")
@final
class ScaleLayer(Layer):
    """Multiplies by a scale broadcast over a run of axes, optionally adding a bias: y = x ⊙ s (+ b).

    The scale s is bottom[1], or a learned blob of shape ``x.shape[axis : axis + num_axes]``; it
    applies to axes ``[axis, axis + s.num_axes)`` of x (a scalar s applies everywhere).
    Backward: dx = dy ⊙ s ;  ds = Σ_{outer, inner} dy ⊙ x ;  db as in Bias.
    NOTE: as in Caffe, the learned scale's diff is overwritten instead of accumulated when the
        bottom has no axes before the scale's (outer = 1) and the scale is not a scalar broadcast
        over several elements; i.e. unless outer > 1 or (s.count == 1 and inner > 1).
    Params (scale_param): axis=1, num_axes=1 (−1: to the end; 0: a scalar), filler (constant 1
        when absent), bias_term=false, bias_filler (constant 0). The bias is an internal Bias
        layer; blobs are [scale, bias], or [bias] with two bottoms.
    Bottoms: x (any shape) [, s (a run of x's dims, or a scalar)].
    Tops: y, shaped like x.
    In place: yes (x is copied for the scale gradient).
    """

    min_bottom_blobs = 1
    max_bottom_blobs = 2
    exact_num_top_blobs = 1
    supports_in_place = True

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.scale_param
        if len(bottom) == 1 and not self.blobs:
            shape = broadcast.operand_shape(self, bottom[0], p.axis, p.num_axes)
            filler = p.filler if p.HasField("filler") else caffe_pb2.FillerParameter(type="constant", value=1)
            self.blobs = [self.new_blob(shape, filler)]
        self.bias_layer: BiasLayer | None = None
        if p.bias_term:
            self._setup_bias(bottom, top)
        self.param_propagate_down = [True] * len(self.blobs)
        self.saved_bottom: torch.Tensor | None = None

    def _setup_bias(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.scale_param
        param = caffe_pb2.LayerParameter(name=self.name, type="Bias", phase=self.phase)
        param.bias_param.axis = p.axis
        param.bias_param.num_axes = bottom[1].num_axes if len(bottom) > 1 else p.num_axes
        param.bias_param.filler.CopyFrom(p.bias_filler)
        self.bias_layer = BiasLayer(param, dtype=self.dtype, device=self.device)
        has_bias = len(self.blobs) + len(bottom) >= 3  # loaded with the scale's other blobs
        if has_bias:
            self.bias_layer.blobs = [self.blobs[-1]]
        self.bias_layer.setup(bottom[:1], top)
        if not has_bias:
            self.blobs.append(self.bias_layer.blobs[0])

    def _scale(self, bottom: Blobs) -> Blob:
        return bottom[1] if len(bottom) > 1 else self.blobs[0]

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        axis = self.param.scale_param.axis
        self.dims = broadcast.broadcast_dims(self, bottom[0], self._scale(bottom), axis)
        if top[0] is not bottom[0]:
            top[0].reshape_like(bottom[0])
        if self.bias_layer is not None:
            self.bias_layer.reshape(top[:1], top)

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        outer, dim, inner = self.dims
        x = bottom[0].data.view(outer, dim, inner)
        if top[0] is bottom[0]:
            self.saved_bottom = x.clone()  # the scale gradient needs x, which y overwrites
        torch.mul(x, self._scale(bottom).data.view(1, dim, 1), out=top[0].data.view(outer, dim, inner))
        if self.bias_layer is not None:
            self.bias_layer.forward(top[:1], top)  # reshaped in reshape

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        outer, dim, inner = self.dims
        dy = top[0].diff.view(outer, dim, inner)
        if self.bias_layer is not None and self.param_propagate_down[-1]:
            self.bias_layer.backward(top, [False], top[:1])
        scale = self._scale(bottom)
        if propagate_down[1] if len(bottom) > 1 else self.param_propagate_down[0]:
            x = (self.from_forward(self.saved_bottom, "the in-place bottom") if top[0] is bottom[0]
                 else bottom[0].data.view(outer, dim, inner))
            grad = (dy * x).sum(dim=(0, 2))  # (dim,)
            overwrite = len(bottom) > 1 or (outer == 1 and (dim > 1 or inner == 1))
            if overwrite:
                scale.diff.view(-1).copy_(grad)
            else:
                scale.diff.view(-1).add_(grad)
        if propagate_down[0]:
            torch.mul(dy, scale.data.view(1, dim, 1), out=bottom[0].diff.view(outer, dim, inner))
