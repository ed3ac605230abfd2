from __future__ import annotations

from collections.abc import Sequence
from typing import final

from recaffe.layers.vision.base_conv import BaseConvolutionLayer
from recaffe.registry import LAYERS


@LAYERS.register("Deconvolution")
@final
class DeconvolutionLayer(BaseConvolutionLayer):
    """Transposed convolution ("deconvolution"): Convolution's forward and backward swapped.

    Forward: y = Wᵀ ⋆ x + b, the gradient of a convolution with the same parameters w.r.t. its
        input (each input pixel scatters W[c] · x[n, c] onto a stride-spaced output grid).
    Backward: bottom.diff = W ⋆ dy (a plain convolution) ;  dW += Σ_n x ⋆ dy ;  db += Σ dy.
    Output size per spatial axis: ``stride·(in − 1) + dilation·(kernel − 1) + 1 − 2·pad``
        (no output padding). With a bilinear weight_filler and group = C it upsamples.
    Params (convolution_param): the same fields and defaults as Convolution.
    Bottoms: one or more blobs of one shape (N…, C, *spatial).
    Tops: one per bottom, (N…, num_output, *out). Blobs: W (C, num_output/group, *kernel),
        b (num_output).
    In place: no.
    """

    transposed = True

    def output_spatial(self, spatial: Sequence[int]) -> tuple[int, ...]:
        return self.geometry.deconv_out(spatial)
