from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.blob import Blob
from recaffe.layer import Blobs, Layer
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS


@LAYERS.register("BatchNorm")
@final
class BatchNormLayer(Layer):
    """Normalizes each channel to zero mean, unit variance: y = (x − μ) / sqrt(σ² + eps).

    Batch statistics (training): μ, σ² are the biased mean and variance over N × spatial, and every
        forward updates the running sums: s ← maf·s + 1 ; mean_sum ← μ + maf·mean_sum ;
        var_sum ← m/(m−1)·σ² + maf·var_sum, with m = count / C (factor 1 when m <= 1).
    Global statistics: μ = mean_sum / s, σ² = var_sum / s (both 0 when s == 0); no update.
    Backward: batch stats dx = (dy − mean(dy) − mean(dy ⊙ y) ⊙ y) / sqrt(σ² + eps);
        global stats dx = dy / sqrt(σ² + eps). The blobs get no gradient.
    No affine part: follow with a Scale layer with bias_term.
    Params (batch_norm_param): use_global_stats (unset: phase == TEST),
        moving_average_fraction (maf)=0.999, eps=1e-5. Every ParamSpec gets lr_mult 0
        (appended where absent; a given lr_mult must be 0).
    Blobs: [mean_sum (C), var_sum (C), s (1)], zero-initialised.
    Bottoms: x (N, C, ...); C = 1 for a 1-D x.
    Tops: y, shaped like x.
    In place: yes.
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1
    supports_in_place = True

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.batch_norm_param
        self.use_global_stats = p.use_global_stats if p.HasField("use_global_stats") else (
            self.phase == caffe_pb2.TEST)
        self.channels = self._channels(bottom[0])
        if not self.blobs:
            self.blobs = [self.new_blob((self.channels,)), self.new_blob((self.channels,)),
                          self.new_blob((1,))]
        for i, spec in enumerate(self.param.param):
            if spec.lr_mult != 0:
                raise self.error(f"param {i} has lr_mult {spec.lr_mult}; the batch statistics are "
                                 "not learnable parameters, lr_mult must be 0")
        for _ in range(len(self.param.param), len(self.blobs)):
            self.param.param.add(lr_mult=0)
        self.param_propagate_down = [False] * len(self.blobs)
        self.x_norm: torch.Tensor | None = None  # y, kept for the batch-stats backward
        self.std = torch.zeros(0)

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        channels = self._channels(bottom[0])
        if channels != self.channels:
            raise self.error(f"bottom has {channels} channels (shape {bottom[0].shape}), the layer "
                             f"was set up for {self.channels}")
        top[0].reshape_like(bottom[0])

    def _channels(self, blob: Blob) -> int:
        if blob.num_axes == 0:
            raise self.error("needs a bottom with at least one axis, got a scalar")
        return 1 if blob.num_axes == 1 else blob.shape[1]

    def _view(self, t: torch.Tensor) -> torch.Tensor:
        return t.view(t.shape[0], self.channels, -1)  # (N, C, spatial)

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        x, y = self._view(bottom[0].data), self._view(top[0].data)
        if self.use_global_stats:
            s = float(self.blobs[2].data[0])
            factor = 0.0 if s == 0 else 1 / s
            mean, var = self.blobs[0].data * factor, self.blobs[1].data * factor
            torch.sub(x, mean.view(1, -1, 1), out=y)
        else:
            var, mean = torch.var_mean(x, dim=(0, 2), correction=0)  # biased, as in Caffe
            torch.sub(x, mean.view(1, -1, 1), out=y)
            self._update_statistics(mean, var, bottom[0].count() // self.channels)
        self.std = (var + self.param.batch_norm_param.eps).sqrt_()  # (C,)
        y.div_(self.std.view(1, -1, 1))
        if not self.use_global_stats:
            self.x_norm = y.clone()  # later in-place layers may overwrite y

    def _update_statistics(self, mean: torch.Tensor, var: torch.Tensor, m: int) -> None:
        maf = self.param.batch_norm_param.moving_average_fraction
        mean_sum, var_sum, s = (blob.data for blob in self.blobs)
        s.mul_(maf).add_(1)
        mean_sum.mul_(maf).add_(mean)
        correction = m / (m - 1) if m > 1 else 1.0
        var_sum.mul_(maf).add_(var, alpha=correction)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        dy, dx = self._view(top[0].diff), self._view(bottom[0].diff)
        std = self.std.view(1, -1, 1)
        if self.use_global_stats:
            torch.div(dy, std, out=dx)
            return
        y = self.from_forward(self.x_norm, "the normalized bottom")
        m = dy.shape[0] * dy.shape[2]
        sum_dy_y = (dy * y).sum(dim=(0, 2)).view(1, -1, 1)  # (1, C, 1)
        sum_dy = dy.sum(dim=(0, 2)).view(1, -1, 1)
        correction = y * sum_dy_y + sum_dy
        torch.sub(dy, correction, alpha=1 / m, out=dx)
        dx.div_(std)
