from __future__ import annotations

from collections.abc import Sequence
from typing import final

from recaffe.layers.vision.base_conv import BaseConvolutionLayer
from recaffe.registry import LAYERS


@LAYERS.register("Convolution")
@final
class ConvolutionLayer(BaseConvolutionLayer):
    """N-D convolution with learned filters: top = W ⋆ bottom + b, per group.

    Forward: y[n, o] = Σ_{c ∈ group(o)} W[o, c] ⋆ x[n, c] + b[o] (zero padding, stride, dilation).
    Backward: dW += Σ_n dy ⋆ x ;  db += Σ_{n, spatial} dy ;  bottom.diff = Wᵀ ⋆ dy (transposed conv).
    Output size per spatial axis: ``(in + 2·pad − (dilation·(kernel − 1) + 1)) / stride + 1`` with
    C's truncating division (a last window that overhangs the padding reads zeros).
    Params (convolution_param): num_output (> 0, required), bias_term=true; kernel_size (required),
        stride=1, pad=0, dilation=1, each given once or once per spatial axis, or for 2-D only as
        kernel_h/kernel_w, stride_h/stride_w, pad_h/pad_w (not together with the repeated form);
        group=1 (divides channels and num_output); weight_filler, bias_filler (default constant 0);
        axis=1 (the channel axis; earlier axes are batch, later axes spatial); force_nd_im2col
        and engine (no effect here).
    Bottoms: one or more blobs of one shape (N…, C, *spatial).
    Tops: one per bottom, (N…, num_output, *out). Blobs: W (num_output, C/group, *kernel), b (num_output).
    In place: no.
    """

    transposed = False

    def output_spatial(self, spatial: Sequence[int]) -> tuple[int, ...]:
        return self.geometry.conv_out(spatial)
