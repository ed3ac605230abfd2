from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs
from recaffe.layers.neuron.base import NeuronLayer
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS

DEFAULT_SLOPE = 0.25


@LAYERS.register("PReLU")
@final
class PReLULayer(NeuronLayer):
    """Parametric ReLU: a learned negative slope per channel (axis 1), or one shared by all.

    Forward: y = max(x, 0) + a_c · min(x, 0)
    Backward: da_c += Σ_{n, spatial} dy · x · 1[x <= 0] ;  dx = dy if x > 0, else dy · a_c
    Params (prelu_param): filler (default constant 0.25), channel_shared=false.
    Blobs: a, shape (C,), or () when channel_shared.
    Bottoms: x (N, C, ...) with 2 to 4 axes (Caffe reads C with its legacy accessor).
    Tops: y, shaped like x.
    In place: yes (as in Caffe, the forward keeps a copy of x for the backward).
    """

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        self._check_axes(bottom)
        p = self.param.prelu_param
        channels = bottom[0].channels
        if not self.blobs:
            filler = p.filler
            if not p.HasField("filler"):
                filler = caffe_pb2.FillerParameter(type="constant", value=DEFAULT_SLOPE)
            self.blobs = [self.new_blob(() if p.channel_shared else (channels,), filler)]
        expected = 1 if p.channel_shared else channels
        if self.blobs[0].count() != expected:
            raise self.error(f"slope blob has {self.blobs[0].count()} values, expected {expected} "
                             f"(channel_shared: {p.channel_shared}, {channels} channels)")
        self.param_propagate_down = [True]

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        self._check_axes(bottom)
        if not self.param.prelu_param.channel_shared and bottom[0].channels != self.blobs[0].count():
            raise self.error(f"the bottom has {bottom[0].channels} channels (shape {bottom[0].shape}) "
                             f"but the slope blob {self.blobs[0].count()}")
        top[0].reshape_like(bottom[0])

    def _check_axes(self, bottom: Blobs) -> None:
        if not 2 <= bottom[0].num_axes <= 4:
            raise self.error(f"the bottom must have 2 to 4 axes, got shape {bottom[0].shape}")

    def _slope(self, x: torch.Tensor) -> torch.Tensor:
        """The slopes, broadcastable against x: (C, 1, ...) or a scalar."""
        a = self.blobs[0].data
        return a if self.param.prelu_param.channel_shared else a.view(-1, *[1] * (x.dim() - 2))

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        x = bottom[0].data
        if top[0] is bottom[0]:
            self.bottom_memory = x.clone()
        torch.where(x > 0, x, x * self._slope(x), out=top[0].data)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        x = self.bottom_memory if top[0] is bottom[0] else bottom[0].data
        dy = top[0].diff
        # the slope gradient first: in place, writing dx overwrites dy
        if self.param_propagate_down[0]:
            contrib = torch.where(x <= 0, dy * x, torch.zeros((), dtype=x.dtype, device=x.device))
            if self.param.prelu_param.channel_shared:
                self.blobs[0].diff.add_(contrib.sum())
            else:
                axes = [0, *range(2, x.dim())]
                self.blobs[0].diff.add_(contrib.sum(dim=axes))
        if propagate_down[0]:
            torch.where(x > 0, dy, dy * self._slope(x), out=bottom[0].diff)
