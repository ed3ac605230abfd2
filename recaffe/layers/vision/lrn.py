from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch
import torch.nn.functional as F

from recaffe.layer import Blobs, Layer
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS

ACROSS_CHANNELS = caffe_pb2.LRNParameter.ACROSS_CHANNELS


@LAYERS.register("LRN")
@final
class LRNLayer(Layer):
    """Local response normalization: y = x · scale^(−β) over a window of n = local_size.

    ACROSS_CHANNELS: scale = k + (α/n) · Σ_{|c′−c| ≤ (n−1)/2} x_{c′}² (channels zero-padded).
        Backward: dx = dy · scale^(−β) − (2αβ/n) · x · Σ_{|c′−c| ≤ (n−1)/2} dy_{c′} y_{c′} / scale_{c′}.
    WITHIN_CHANNEL (Caffe builds it from Split, Power, AVE pooling, Power and Eltwise layers):
        scale = 1 + α · avg_{n×n}(x²), the average over the zero-padded n×n neighbourhood always
        dividing by n² (padding counts); k is ignored.
        Backward: dx = dy · scale^(−β) − (2αβ/n²) · x · Σ_{n×n} dy · x · scale^(−β−1).
    Params (lrn_param): local_size=5 (odd), alpha=1, beta=0.75, norm_region=ACROSS_CHANNELS
        (or WITHIN_CHANNEL), k=1, engine (no effect).
    Bottoms: x (N, C, H, W).
    Tops: y (N, C, H, W).
    In place: unsafe (backward reads the bottom data, as in Caffe).
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.lrn_param
        if p.local_size % 2 != 1:
            raise self.error(f"LRN only supports odd values for local_size, got {p.local_size}")
        self.across = p.norm_region == ACROSS_CHANNELS

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        if bottom[0].num_axes != 4:
            raise self.error(f"input must have 4 axes (num, channels, height, width), got shape "
                             f"{bottom[0].shape}")
        top[0].reshape_like(bottom[0])

    def _window_mean(self, t: torch.Tensor) -> torch.Tensor:
        """Mean over the zero-padded window (n channels, or n×n pixels); pads count."""
        n = self.param.lrn_param.local_size
        pad = (n - 1) // 2
        if self.across:  # pool along C of an (N, 1, C, H·W) view
            mean = F.avg_pool2d(t.reshape(t.shape[0], 1, t.shape[1], -1), (n, 1), 1, (pad, 0))
            return mean.view(t.shape)
        return F.avg_pool2d(t, n, 1, pad)

    def _scale(self, x: torch.Tensor) -> torch.Tensor:
        p = self.param.lrn_param
        return (p.k if self.across else 1.0) + p.alpha * self._window_mean(x * x)

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        x = bottom[0].data
        self.scale = self._scale(x)
        torch.mul(x, self.scale.pow(-self.param.lrn_param.beta), out=top[0].data)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        p, x, dy = self.param.lrn_param, bottom[0].data, top[0].diff
        # The window sums are symmetric, so each is its own adjoint.
        ratio = self._window_mean(dy * x * self.scale.pow(-p.beta - 1.0))
        dx = dy * self.scale.pow(-p.beta) - (2.0 * p.alpha * p.beta) * x * ratio
        bottom[0].diff.copy_(dx)
