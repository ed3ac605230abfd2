from __future__ import annotations

import math
from collections.abc import Sequence
from typing import final

from recaffe.layer import Blobs, Layer
from recaffe.layers.vision.base_conv import parse_geometry
from recaffe.math.im2col import col2im_nd, im2col_nd
from recaffe.registry import LAYERS


@LAYERS.register("Im2col")
@final
class Im2colLayer(Layer):
    """Rearranges every convolution window into a column (Caffe's im2col), for N spatial axes.

    Forward: top[n, (c·k₀ + i₀)·k₁ + i₁ …, o₀, o₁ …] = x[n, c, o₀·s₀ − p₀ + i₀·d₀, …] (0 outside).
    Backward: bottom.diff = col2im(top.diff): each column entry summed back onto its pixel.
    Output size per spatial axis as Convolution: (in + 2·pad − (d·(k − 1) + 1)) / stride + 1.
    Params (convolution_param): kernel_size (required), stride=1, pad=0, dilation=1, each once or
        once per spatial axis (or 2-D kernel_h/w, stride_h/w, pad_h/w); axis=1; force_nd_im2col
        (same result either way). num_output, group, bias and fillers are ignored.
    Bottoms: x (N…, C, *spatial), at least one spatial axis.
    Tops: (N…, C·Πkernel, *out).
    In place: no.
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.convolution_param
        self.axis = bottom[0].canonical_axis(p.axis)
        nd = bottom[0].num_axes - self.axis - 1
        if nd < 1:
            raise self.error(f"needs at least one spatial axis after axis {self.axis}, "
                             f"got shape {bottom[0].shape}")
        self.geometry = parse_geometry(self, p, nd)

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        shape = bottom[0].shape
        if len(shape) != self.axis + 1 + len(self.geometry.kernel):
            raise self.error(f"bottom num_axes may not change: got shape {shape}")
        out = self.geometry.conv_out(shape[self.axis + 1:])
        if any(o < 1 for o in out):
            raise self.error(f"output size {out} from input {shape} is empty or negative")
        self.num = math.prod(shape[: self.axis])
        top[0].reshape((*shape[: self.axis], shape[self.axis] * math.prod(self.geometry.kernel), *out))

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        x = bottom[0].data.view(self.num, *bottom[0].shape[self.axis:])  # (num, C, *spatial)
        top[0].data.view(self.num, *top[0].shape[self.axis:]).copy_(im2col_nd(x, self.geometry))

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if propagate_down[0]:
            cols = top[0].diff.view(self.num, *top[0].shape[self.axis:])  # (num, C·K, *out)
            dx = col2im_nd(cols, bottom[0].shape[self.axis + 1:], self.geometry)
            bottom[0].diff.copy_(dx.view(bottom[0].shape))
