"""``.binaryproto`` mean files: one serialised BlobProto holding a (1, C, H, W) mean image.

Caffe's ``compute_image_mean`` writes the legacy ``num = 1, channels, height, width`` fields
with float ``data`` in CHW order (the datum's channel order, BGR for images); pycaffe's
``array_to_blobproto`` writes the same. Readers (DataTransformer, InfogainLoss) go through
``Blob::FromProto``, so a ``shape { dim: 1 dim: C dim: H dim: W }`` file reads the same way.
"""

from __future__ import annotations

import os

import numpy as np

from recaffe import errors
from recaffe.io import blobproto, prototxt
from recaffe.proto import caffe_pb2


def read_blob(path: str | os.PathLike[str]) -> np.ndarray:
    """The BlobProto in ``path`` as an array of its own shape (legacy fields give 4 axes)."""
    proto = prototxt.read_binary(path, caffe_pb2.BlobProto())
    with errors.read_guard(path, "binaryproto file"):
        return blobproto.array_from_proto(proto)


def read_mean(path: str | os.PathLike[str]) -> np.ndarray:
    """The mean image in ``path`` as a (C, H, W) array (float32, or float64 if stored as double)."""
    mean = read_blob(path)
    if mean.ndim == 4 and mean.shape[0] == 1:
        return mean[0]
    if mean.ndim == 3:
        return mean
    raise prototxt.ProtoFileError(
        f"{os.fspath(path)!r} holds a blob of shape {mean.shape}; a mean file holds one "
        f"(1, C, H, W) or (C, H, W) image"
    )


def write_mean(path: str | os.PathLike[str], mean: np.ndarray) -> None:
    """Write a (C, H, W) or (1, C, H, W) mean as Caffe does: num = 1, channels, height, width, floats."""
    array = np.asarray(mean)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise ValueError(f"a mean image has shape (C, H, W) or (1, C, H, W), got {np.shape(mean)}")
    channels, height, width = array.shape
    proto = caffe_pb2.BlobProto(num=1, channels=channels, height=height, width=width)
    blobproto.append_values(proto, "data", array)
    prototxt.write_binary(path, proto)
