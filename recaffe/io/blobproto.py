"""BlobProto <-> Blob / numpy, with Caffe's legacy (num, channels, height, width) shape rules."""

from __future__ import annotations

import functools

import numpy as np
import torch
from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

from recaffe.blob import Blob
from recaffe.proto import caffe_pb2


def has_legacy_shape(proto: caffe_pb2.BlobProto) -> bool:
    return (proto.HasField("num") or proto.HasField("channels") or proto.HasField("height")
            or proto.HasField("width"))


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
    return tuple(shape) == tuple(proto.shape.dim)


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
    append_values(proto, "double_data" if double else "data", data)
    if diff is not None:
        append_values(proto, "double_diff" if double else "diff", diff)
    return proto


def append_values(proto: caffe_pb2.BlobProto, field: str, values: np.ndarray | torch.Tensor) -> None:
    """Append ``values`` (any shape, flattened) to ``proto.<field>``: data, diff, double_*.

    Filling a repeated field from Python costs a Python float per value (seconds for a large
    layer). Instead the values go in as the bytes field of a stand-in message with the same
    field number; a packed repeated float/double field and a bytes field are the same on the
    wire (tag, length, little-endian payload), so merging that serialisation into the BlobProto
    appends the values, with protobuf's own encoder and decoder doing all the work.
    """
    double = field.startswith("double")
    if isinstance(values, torch.Tensor):
        values = values.detach().to(device="cpu", dtype=torch.float64 if double else torch.float32).numpy()
    payload = np.ascontiguousarray(values, dtype="<f8" if double else "<f4").tobytes()
    if not payload:
        return
    carrier = _packed_values_carrier()()
    setattr(carrier, field, payload)
    del payload  # each step frees its input before the next copy
    wire = carrier.SerializeToString()
    del carrier
    proto.MergeFromString(wire)


@functools.cache
def _packed_values_carrier() -> type[message.Message]:
    """A message with BlobProto's packed value fields retyped as bytes (same names and numbers)."""
    file = descriptor_pb2.FileDescriptorProto(
        name="recaffe/io/packed_values.proto", package="recaffe.io", syntax="proto2"
    )
    carrier = file.message_type.add(name="PackedBlobValues")
    kind = descriptor_pb2.FieldDescriptorProto
    for name in ("data", "diff", "double_data", "double_diff"):
        number = caffe_pb2.BlobProto.DESCRIPTOR.fields_by_name[name].number
        carrier.field.add(name=name, number=number, type=kind.TYPE_BYTES, label=kind.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("recaffe.io.PackedBlobValues"))


def blob_to_proto(
    blob: Blob, write_diff: bool = False, out: caffe_pb2.BlobProto | None = None
) -> caffe_pb2.BlobProto:
    """Caffe's Blob::ToProto: ``shape`` plus data (and diff when asked)."""
    return array_to_proto(blob.data, blob.diff if write_diff else None, out)
