"""BlobProto <-> Blob / numpy, with Caffe's legacy (num, channels, height, width) shape rules."""

from __future__ import annotations

import numpy as np
import torch

from recaffe.blob import Blob
from recaffe.proto import caffe_pb2


def has_legacy_shape(proto: caffe_pb2.BlobProto) -> bool:
    return any(proto.HasField(f) for f in ("num", "channels", "height", "width"))


def proto_shape(proto: caffe_pb2.BlobProto) -> tuple[int, ...]:
    """The shape Caffe's FromProto gives: 4-D legacy dims if any is set, else ``shape.dim``."""
    if has_legacy_shape(proto):
        return (proto.num, proto.channels, proto.height, proto.width)
    return tuple(int(d) for d in proto.shape.dim)


def shape_equals(shape: tuple[int, ...], proto: caffe_pb2.BlobProto) -> bool:
    """Caffe's Blob::ShapeEquals: legacy dims compare against the last 4 axes, padded with 1."""
    if has_legacy_shape(proto):
        if len(shape) > 4:
            return False
        padded = (1,) * (4 - len(shape)) + tuple(shape)
        return padded == (proto.num, proto.channels, proto.height, proto.width)
    return tuple(shape) == tuple(int(d) for d in proto.shape.dim)


def array_from_proto(proto: caffe_pb2.BlobProto, diff: bool = False) -> np.ndarray:
    """The blob's data (or diff) as a float32/float64 numpy array of ``proto_shape``."""
    shape = proto_shape(proto)
    count = int(np.prod(shape, dtype=np.int64))
    doubles, floats = (proto.double_diff, proto.diff) if diff else (proto.double_data, proto.data)
    values = np.array(doubles, dtype=np.float64) if len(doubles) else np.array(floats, dtype=np.float32)
    if values.size != count and not (diff and values.size == 0):
        what = "diff" if diff else "data"
        raise ValueError(f"BlobProto of shape {shape} holds {values.size} {what} values, expected {count}")
    return values.reshape(shape) if values.size else np.zeros(shape, dtype=np.float32)


def blob_from_proto(
    proto: caffe_pb2.BlobProto,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Blob:
    blob = Blob(proto_shape(proto), dtype=dtype, device=device)
    load_into_blob(blob, proto, reshape=False)
    return blob


def load_into_blob(blob: Blob, proto: caffe_pb2.BlobProto, reshape: bool = False) -> None:
    """Caffe's Blob::FromProto: copy data (and diff if present); shape must match unless reshape."""
    if reshape:
        blob.reshape(proto_shape(proto))
    elif not shape_equals(blob.shape, proto):
        raise ValueError(f"shape mismatch: blob {blob.shape} vs BlobProto {proto_shape(proto)}")
    blob.data.copy_(torch.from_numpy(array_from_proto(proto).reshape(blob.shape)))
    if len(proto.double_diff) or len(proto.diff):
        blob.diff.copy_(torch.from_numpy(array_from_proto(proto, diff=True).reshape(blob.shape)))


def array_to_proto(
    data: np.ndarray | torch.Tensor,
    diff: np.ndarray | torch.Tensor | None = None,
    out: caffe_pb2.BlobProto | None = None,
) -> caffe_pb2.BlobProto:
    """A BlobProto with ``shape.dim`` and float values (double for float64 input), as Blob::ToProto."""
    proto = caffe_pb2.BlobProto() if out is None else out
    proto.Clear()
    proto.shape.dim.extend(int(d) for d in data.shape)
    double = data.dtype in (np.float64, torch.float64)
    extend_values(proto.double_data if double else proto.data, data, double)
    if diff is not None:
        extend_values(proto.double_diff if double else proto.diff, diff, double)
    return proto


# Values cross into protobuf as Python floats (its only fast input); converting a slice at a
# time keeps that temporary list small instead of one Python float per weight at once.
_HOST_CHUNK = 1 << 22  # elements brought to host memory at a time (for device tensors)
_LIST_CHUNK = 1 << 14  # elements per temporary Python list


def extend_values(field, values: np.ndarray | torch.Tensor, double: bool = False) -> None:  # type: ignore[no-untyped-def]
    """Append ``values`` (any shape, flattened) to a repeated float or double field."""
    if isinstance(values, torch.Tensor):
        flat = values.detach().reshape(-1)
        dtype = torch.float64 if double else torch.float32
        to_host = lambda part: part.to(device="cpu", dtype=dtype).numpy()  # noqa: E731
    else:
        flat = np.asarray(values, dtype=np.float64 if double else np.float32).reshape(-1)
        to_host = lambda part: part  # noqa: E731
    for start in range(0, flat.shape[0], _HOST_CHUNK):
        host = to_host(flat[start : start + _HOST_CHUNK])
        for i in range(0, host.shape[0], _LIST_CHUNK):
            field.extend(host[i : i + _LIST_CHUNK].tolist())


def blob_to_proto(
    blob: Blob, write_diff: bool = False, out: caffe_pb2.BlobProto | None = None
) -> caffe_pb2.BlobProto:
    """Caffe's Blob::ToProto: ``shape`` plus data (and diff when asked)."""
    return array_to_proto(blob.data, blob.diff if write_diff else None, out)
