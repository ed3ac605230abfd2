from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe import forks
from recaffe.layer import Blobs, Layer
from recaffe.layers.vision.shapes import require_4d
from recaffe.registry import LAYERS

Pair = tuple[torch.Tensor, torch.Tensor]


def taps(size_in: int, size_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fork's caffe_cpu_interp2 along one axis: first source index, step to the second, its weight.

    r = (in − 1)/(out − 1) in float (0 for one output), source = r·o in float, truncated;
    the second tap is the next index unless the first is the last.
    """
    if size_out > 1:
        ratio = torch.tensor(float(size_in - 1), dtype=torch.float32) / (size_out - 1)
    else:
        ratio = torch.tensor(0.0, dtype=torch.float32)
    source = ratio * torch.arange(size_out, dtype=torch.float32)
    first = source.to(torch.int64)
    step = (first < size_in - 1).to(torch.int64)
    return first, step, source - first.to(torch.float32)


@LAYERS.register("Interp", dialect="pspnet")
@final
class InterpLayer(Layer):
    """PSPNet's (DeepLab v2's) Interp: bilinear resizing with the corners aligned.

    Forward: the bottom, cropped by pad_beg/pad_end (≤ 0) on each side, resized bilinearly to the
        output size with source positions (in − 1)/(out − 1) · o (corners aligned), weights in float
        as the fork's caffe_cpu_interp2; equal sizes copy.
    Backward: the adjoint: each top diff spreads to its four source pixels with the same weights.
    Params (interp_param): one of zoom_factor Z (out = in + (in − 1)(Z − 1)), shrink_factor S
        (out = (in − 1)/S + 1), both (shrink, then zoom), or height and width; pad_beg=0,
        pad_end=0 (≤ 0: crop).
    Bottoms: x (N×C×H×W). Tops: y (N×C×H'×W').
    In place: no.
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1
    supports_in_place = False

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = forks.get_dialect("pspnet").fork_param(self.param).interp_param
        self.p = p
        zoom, shrink = p.HasField("zoom_factor"), p.HasField("shrink_factor")
        size = p.HasField("height") and p.HasField("width")
        if (zoom or shrink) == size:
            raise self.error("interp_param needs zoom_factor and/or shrink_factor, or height and width "
                             "(one way, not both)")
        if p.zoom_factor < 1 or p.shrink_factor < 1:
            raise self.error("interp_param zoom_factor and shrink_factor must be >= 1")
        if p.pad_beg > 0 or p.pad_end > 0:
            raise self.error("interp_param pad_beg and pad_end must be <= 0 (they crop)")

    def _out(self, size: int) -> int:
        p = self.p
        if p.HasField("shrink_factor"):
            size = (size - 1) // p.shrink_factor + 1
        if p.HasField("zoom_factor"):
            size = size + (size - 1) * (p.zoom_factor - 1)
        return size

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        require_4d(self, bottom[0])
        n, c, h, w = bottom[0].shape
        self.h_in, self.w_in = h + self.p.pad_beg + self.p.pad_end, w + self.p.pad_beg + self.p.pad_end
        if self.h_in < 1 or self.w_in < 1:
            raise self.error(f"pad_beg/pad_end crop the whole input (shape {bottom[0].shape})")
        if self.p.HasField("height"):
            self.h_out, self.w_out = self.p.height, self.p.width
        else:
            self.h_out, self.w_out = self._out(self.h_in), self._out(self.w_in)
        if self.h_out < 1 or self.w_out < 1:
            raise self.error(f"output size {self.h_out}x{self.w_out} must be positive")
        top[0].reshape(n, c, self.h_out, self.w_out)
        self.rows, self.cols = taps(self.h_in, self.h_out), taps(self.w_in, self.w_out)

    def _crop(self, blob: torch.Tensor) -> torch.Tensor:
        begin = -self.p.pad_beg
        return blob[:, :, begin:begin + self.h_in, begin:begin + self.w_in]

    def _taps(self, dtype: torch.dtype) -> tuple[Pair, Pair, torch.Tensor, torch.Tensor]:
        """Source rows (first, second) as (H', 1), columns as (1, W'), and the second taps' weights."""
        (h1, hp, hl), (w1, wp, wl) = self.rows, self.cols
        rows = (h1.view(-1, 1), (h1 + hp).view(-1, 1))
        cols = (w1.view(1, -1), (w1 + wp).view(1, -1))
        return rows, cols, hl.to(dtype).view(-1, 1), wl.to(dtype).view(1, -1)

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        x = self._crop(bottom[0].data)
        if (self.h_in, self.w_in) == (self.h_out, self.w_out):
            top[0].data.copy_(x)
            return
        (r0, r1), (c0, c1), hl, wl = self._taps(x.dtype)
        upper = (1 - wl) * x[:, :, r0, c0] + wl * x[:, :, r0, c1]
        lower = (1 - wl) * x[:, :, r1, c0] + wl * x[:, :, r1, c1]
        torch.add((1 - hl) * upper, hl * lower, out=top[0].data)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        bottom[0].diff.zero_()
        dx = self._crop(bottom[0].diff)
        dy = top[0].diff
        if (self.h_in, self.w_in) == (self.h_out, self.w_out):
            dx.copy_(dy)
            return
        n, c = dy.shape[:2]
        flat = torch.zeros(n, c, self.h_in * self.w_in, dtype=dy.dtype, device=dy.device)
        (r0, r1), (c0, c1), hl, wl = self._taps(dy.dtype)
        for rows, cols, weight in ((r0, c0, (1 - hl) * (1 - wl)), (r0, c1, (1 - hl) * wl),
                                   (r1, c0, hl * (1 - wl)), (r1, c1, hl * wl)):
            index = (rows * self.w_in + cols).reshape(-1)
            flat.index_add_(2, index, (dy * weight).reshape(n, c, -1))
        dx.copy_(flat.view(n, c, self.h_in, self.w_in))
