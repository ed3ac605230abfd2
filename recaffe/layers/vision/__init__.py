"""Vision layers: convolution, deconvolution, pooling, SPP, LRN, im2col, crop."""

from recaffe.layers.vision import (  # noqa: F401
    convolution,
    crop,
    deconvolution,
    im2col,
    lrn,
    pooling,
    spp,
)
