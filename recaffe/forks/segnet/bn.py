from __future__ import annotations

from collections.abc import Sequence
from typing import Any, final

import torch

from recaffe import forks
from recaffe.layer import Blobs, Layer
from recaffe.layers.vision.shapes import require_4d
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS

_EPS = 1e-9  # the fork's var_eps_, fixed


def _bvlc_filler(filler: Any) -> caffe_pb2.FillerParameter:
    """A dialect FillerParameter as BVLC's (same fields and numbers; unset: constant 0, as in Caffe)."""
    return caffe_pb2.FillerParameter.FromString(filler.SerializeToString())


def _per_channel(values: torch.Tensor) -> torch.Tensor:
    """Σ over N, H, W of an N×C×H×W tensor, as the fork sums: each plane, then over the batch."""
    return values.sum(dim=(2, 3)).sum(dim=0)


@LAYERS.register("BN", dialect="segnet")
@final
class BNLayer(Layer):
    """SegNet's BN (caffe-segnet's bn_layer): per-channel normalization, scale and shift, two modes.

    LEARN (batch statistics, in both phases): μ = mean of x over N, H, W (the plane means, then
        their batch mean), σ² = E[x²] − μ² (the fork's formula, in the blob's dtype), std =
        sqrt(σ² + 1e-9), x̂ = (x − μ)/std, y = scale · x̂ + shift. Tops 1 and 2 (optional) are μ
        and σ² (1×C×1×1). No running statistics: SegNet's compute_bn_statistics.py folds them
        into scale and shift, then sets INFERENCE.
      Backward: dscale = Σ dy · x̂, dshift = Σ dy (both *assigned*, not accumulated, as the fork);
        with g = scale · dy, dx = (g − mean(g) − x̂ · mean(g · x̂)) / std.
    INFERENCE: y = scale · x + shift. Backward: dscale = Σ dy · x (x read at backward time: in
        place, as in SegNet's prototxts, that is the top's data, as in the fork), dshift = Σ dy,
        dx = scale · dy.
    Params (bn_param): bn_mode=LEARN, scale_filler, shift_filler (default constant 0, as the fork).
    Blobs: scale, shift, each 1×C×1×1.
    Bottoms: x (N×C×H×W). Tops: y (like x); LEARN only: batch mean, batch variance (optional).
    In place: yes.
    """

    exact_num_bottom_blobs = 1
    min_top_blobs = 1
    max_top_blobs = 3
    supports_in_place = True

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = forks.get_dialect("segnet").fork_param(self.param).bn_param
        self.learn = p.bn_mode == p.LEARN
        if not self.learn and len(top) > 1:
            raise self.error(f"bn_mode INFERENCE produces 1 top, got {len(top)} (batch mean and variance "
                             f"tops need LEARN)")
        require_4d(self, bottom[0])
        channels = bottom[0].shape[1]
        if not self.blobs:
            shape = [1, channels, 1, 1]
            self.blobs = [self.new_blob(shape, _bvlc_filler(p.scale_filler)),
                          self.new_blob(shape, _bvlc_filler(p.shift_filler))]
        if len(self.blobs) != 2 or any(b.count() != channels for b in self.blobs):
            raise self.error(f"expects 2 blobs of {channels} values (scale, shift), got "
                             f"{[b.shape for b in self.blobs]}")
        self.param_propagate_down = [True, True]
        self.x_hat: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        require_4d(self, bottom[0])
        if top[0] is not bottom[0]:
            top[0].reshape_like(bottom[0])
        for blob in top[1:]:
            blob.reshape((1, bottom[0].shape[1], 1, 1))

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        x = bottom[0].data
        scale, shift = (b.data.view(1, -1, 1, 1) for b in self.blobs)
        if not self.learn:
            torch.addcmul(shift, x, scale, out=top[0].data)
            return
        mean = x.mean(dim=(2, 3)).mean(dim=0).view(1, -1, 1, 1)
        var = x.square().mean(dim=(2, 3)).mean(dim=0).view(1, -1, 1, 1) - mean.square()
        for blob, value in zip(top[1:], (mean, var)):
            blob.data.copy_(value)
        std = torch.sqrt(var + _EPS)
        x_hat = (x - mean) / std
        self.x_hat, self.std = (x_hat, std) if self.need_backward else (None, None)
        torch.addcmul(shift, x_hat, scale, out=top[0].data)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        dy = top[0].diff
        scale = self.blobs[0].data.view(1, -1, 1, 1)
        if not self.learn:
            if self.param_propagate_down[0]:
                self.blobs[0].diff.view(-1).copy_(_per_channel(bottom[0].data * dy))
            if self.param_propagate_down[1]:
                self.blobs[1].diff.view(-1).copy_(_per_channel(dy))
            if propagate_down[0]:
                torch.mul(dy, scale, out=bottom[0].diff)
            return
        x_hat = self.from_forward(self.x_hat, "the normalized input")
        std = self.from_forward(self.std, "the batch statistics")
        if self.param_propagate_down[0]:
            self.blobs[0].diff.view(-1).copy_(_per_channel(x_hat * dy))
        if self.param_propagate_down[1]:
            self.blobs[1].diff.view(-1).copy_(_per_channel(dy))
        if propagate_down[0]:
            g = dy * scale
            count = g.shape[0] * g.shape[2] * g.shape[3]
            sums = (_per_channel(g * x_hat).view(1, -1, 1, 1) * x_hat + _per_channel(g).view(1, -1, 1, 1))
            bottom[0].diff.copy_((g + sums * (-1.0 / count)) / std)  # the fork: axpby by -1/(N·H·W)
