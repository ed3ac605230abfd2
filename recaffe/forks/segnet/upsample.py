from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe import forks
from recaffe.layer import Blobs, Layer
from recaffe.layers.vision.shapes import require_4d
from recaffe.registry import LAYERS


@LAYERS.register("Upsample", dialect="segnet")
@final
class UpsampleLayer(Layer):
    """SegNet's Upsample: max-unpooling, placing each input where its encoder's max pooling took it.

    Forward: top is zero except top[n, c].flat[mask[n, c, i]] = x[n, c].flat[i], the mask being the
        encoder Pooling layer's second top (flat index h·W + w into its bottom, as floats); where
        indices repeat (overlapping pooling windows) the last input in memory order wins, as the
        fork's CPU loop.
    Backward: dx[n, c].flat[i] = dy[n, c].flat[mask[n, c, i]] (assigned); the mask's diff is left
        untouched (the fork ignores its propagate_down).
    Output size: upsample_h × upsample_w when both are given; otherwise (deprecated in the fork)
        H·scale_h − pad_out_h by W·scale_w − pad_out_w, recomputed at every reshape (the fork
        computes it at the first reshape only).
    Params (upsample_param): upsample_h, upsample_w (both, each > 1); or scale=2 (> 1), or
        scale_h and scale_w without scale (each > 1); pad_out_h, pad_out_w=false (only with a scale
        of 2 along that axis).
    Bottoms: x (N×C×H×W), mask (same shape). Tops: y (N×C×out_h×out_w).
    In place: no.
    """

    exact_num_bottom_blobs = 2
    exact_num_top_blobs = 1

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = forks.get_dialect("segnet").fork_param(self.param).upsample_param
        given = p.HasField("upsample_h") and p.HasField("upsample_w")
        if not (given or (not p.HasField("scale") and p.HasField("scale_h") and p.HasField("scale_w"))
                or (not p.HasField("scale_h") and not p.HasField("scale_w"))):
            raise self.error("upsample_param needs upsample_h and upsample_w, else (deprecated) scale, or "
                             "scale_h and scale_w without scale")
        self.size: tuple[int, int] | None = None
        self.scale = (0, 0)
        self.pad_out = (False, False)
        if given:
            if p.upsample_h <= 1 or p.upsample_w <= 1:
                raise self.error(f"upsample_param.upsample_h and upsample_w must be > 1, got {p.upsample_h} "
                                 f"and {p.upsample_w}")
            self.size = (p.upsample_h, p.upsample_w)
            return
        self.scale = (p.scale, p.scale) if not p.HasField("scale_h") else (p.scale_h, p.scale_w)
        if min(self.scale) <= 1:
            raise self.error(f"upsample_param scale must be > 1 along both axes, got {self.scale}")
        self.pad_out = (p.pad_out_h, p.pad_out_w)
        for axis, pad, scale in zip("hw", self.pad_out, self.scale):
            if pad and scale != 2:
                raise self.error(f"upsample_param.pad_out_{axis} needs a scale of 2 along {axis}, "
                                 f"got {scale}")

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        require_4d(self, bottom[0])
        if bottom[1].shape != bottom[0].shape:
            raise self.error(f"the mask (bottom 1) must have the input's shape {bottom[0].shape}, got "
                             f"{bottom[1].shape}")
        n, c, h, w = bottom[0].shape
        out_h, out_w = self.size or (h * self.scale[0] - self.pad_out[0],
                                     w * self.scale[1] - self.pad_out[1])
        top[0].reshape((n, c, out_h, out_w))

    def _indices(self, mask: torch.Tensor, plane: int) -> torch.Tensor:
        index = mask.reshape(mask.shape[0] * mask.shape[1], -1).long()  # C's static_cast<int>: truncation
        low, high = (int(index.min()), int(index.max())) if index.numel() else (0, 0)
        if low < 0 or high >= plane:
            raise self.error(f"mask index {high if high >= plane else low} is outside the {plane} "
                             f"positions of the output plane; the upsampling must match the encoder "
                             f"pooling layer that made the mask")
        return index

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        x, y = bottom[0].data, top[0].data
        plane = y.shape[2] * y.shape[3]
        y.zero_()
        index = self._indices(bottom[1].data, plane)
        y.view(-1, plane).scatter_(1, index, x.reshape(-1, x.shape[2] * x.shape[3]))

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:  # the mask gets no gradient; its diff is left as it is (as the fork)
            return
        dy = top[0].diff
        plane = dy.shape[2] * dy.shape[3]
        dx = bottom[0].diff
        torch.gather(dy.reshape(-1, plane), 1, self._indices(bottom[1].data, plane),
                     out=dx.view(dx.shape[0] * dx.shape[1], -1))
