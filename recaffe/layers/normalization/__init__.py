"""Normalization and affine layers: batch norm, MVN, scale, bias."""

from recaffe.layers.normalization import (
    batch_norm,  # noqa: F401
    bias,  # noqa: F401
    mvn,  # noqa: F401
    scale,  # noqa: F401
)
