"""Shape checks shared by the 2-D vision layers (LRN, Pooling, SPP)."""

from __future__ import annotations

from recaffe.blob import Blob
from recaffe.layer import Layer


def require_4d(layer: Layer, blob: Blob) -> None:
    """Refuse a bottom that is not (num, channels, height, width), as Caffe's CHECK_EQ(4, ...)."""
    if blob.num_axes != 4:
        raise layer.error(f"input must have 4 axes (num, channels, height, width), got shape {blob.shape}")
