from __future__ import annotations

from collections.abc import Sequence
from typing import Any, final

import torch

from recaffe import forks
from recaffe.layer import Blobs, Layer
from recaffe.layers.vision.shapes import require_4d
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS


def _bvlc_filler(filler: Any, default: float) -> caffe_pb2.FillerParameter:
    """A dialect FillerParameter as BVLC's (same fields, same numbers); unset: constant ``default``."""
    out = caffe_pb2.FillerParameter(type="constant", value=default)
    if filler.ListFields():
        out.ParseFromString(filler.SerializeToString())
    return out


@LAYERS.register("BN", dialect="pspnet")
@final
class BNLayer(Layer):
    """PSPNet's BN (yjxiong/caffe's, with bn_param): batch normalization with its own scale and shift.

    Forward: y = slope · (x − μ) / sqrt(σ² + eps) + bias, per channel. μ, σ² are the stored
        running statistics when ``frozen`` or in the TEST phase; otherwise the batch's (over N, H,
        W; σ² biased), and the running ones become momentum · running + (1 − momentum) · batch.
    Backward: frozen: dx = dy · slope / sqrt(σ² + eps) and no parameter gradients (whatever the
        lr_mult); otherwise the batch-norm gradient dx = slope/std · (dy − mean(dy) − x̂ · mean(dy · x̂))
        with the x̂ and std of the forward, also in the TEST phase, where they come from the
        running statistics (the fork's bn_layer.cpp; checked against its golden bn_test case),
        and dslope += Σ dy·x̂, dbias += Σ dy.
    Params (bn_param): slope_filler (constant 1), bias_filler (constant 0), momentum=0.9,
        eps=1e-5, frozen=false, engine (no effect).
    Blobs: slope, bias, running mean, running variance, each 1×C×1×1.
    Bottoms: x (N×C×H×W). Tops: y, shaped like x.
    In place: yes.
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1
    supports_in_place = True  # as PSPNet's prototxts use it

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = forks.get_dialect("pspnet").fork_param(self.param).bn_param
        require_4d(self, bottom[0])
        channels = bottom[0].shape[1]
        self.momentum, self.eps, self.frozen = p.momentum, p.eps, p.frozen
        if not self.blobs:
            shape = [1, channels, 1, 1]
            self.blobs = [self.new_blob(shape, _bvlc_filler(p.slope_filler, 1.0)),
                          self.new_blob(shape, _bvlc_filler(p.bias_filler, 0.0)),
                          self.new_blob(shape), self.new_blob(shape)]
        if len(self.blobs) != 4 or any(b.count() != channels for b in self.blobs):
            raise self.error(f"expects 4 blobs of {channels} values (slope, bias, mean, variance), got "
                             f"{[b.shape for b in self.blobs]}")
        self.param_propagate_down = [not self.frozen] * 2 + [False] * 2
        self.x_hat: torch.Tensor | None = None
        self.inv_std: torch.Tensor | None = None

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        require_4d(self, bottom[0])
        if top[0] is not bottom[0]:
            top[0].reshape_like(bottom[0])

    @property
    def global_stats(self) -> bool:
        return self.frozen or self.phase == caffe_pb2.TEST

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        x = bottom[0].data
        slope, bias, mean, var = (b.data.view(1, -1, 1, 1) for b in self.blobs)
        if not self.global_stats:
            batch_mean = x.mean(dim=(0, 2, 3), keepdim=True)
            batch_var = (x - batch_mean).square().mean(dim=(0, 2, 3), keepdim=True)
            mean.mul_(self.momentum).add_((1 - self.momentum) * batch_mean)
            var.mul_(self.momentum).add_((1 - self.momentum) * batch_var)
            mean, var = batch_mean, batch_var
        self.inv_std = torch.rsqrt(var + self.eps)
        x_hat = (x - mean) * self.inv_std
        self.x_hat = x_hat if self.need_backward else None
        torch.addcmul(bias, x_hat, slope, out=top[0].data)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        dy = top[0].diff
        x_hat = self.from_forward(self.x_hat, "the normalized input")
        inv_std = self.from_forward(self.inv_std, "the statistics")
        slope = self.blobs[0].data.view(1, -1, 1, 1)
        if self.param_propagate_down[0] and not self.frozen:
            self.blobs[0].diff.view(-1).add_((dy * x_hat).sum(dim=(0, 2, 3)))
        if self.param_propagate_down[1] and not self.frozen:
            self.blobs[1].diff.view(-1).add_(dy.sum(dim=(0, 2, 3)))
        if propagate_down[0]:
            if self.frozen:
                dx = dy * slope * inv_std
            else:
                mean_dy = dy.mean(dim=(0, 2, 3), keepdim=True)
                mean_dy_xhat = (dy * x_hat).mean(dim=(0, 2, 3), keepdim=True)
                dx = slope * inv_std * (dy - mean_dy - x_hat * mean_dy_xhat)
            bottom[0].diff.copy_(dx)
