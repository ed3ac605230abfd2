"""Writing a ``.caffemodel`` with the blobs' values streamed from the tensors to the file.

Serialising a layer through protobuf holds its values three more times (the bytes handed to the
message, the message's repeated field, the serialised message): saving CaffeNet peaked at ~2x its
weights. Here protobuf serialises everything but the values: each layer's parameters (in two
parts, the fields numbered below and above ``blobs``), each blob's shape. A packed repeated float
field is a tag, a length and the little-endian values, so the values are written from the
tensor's memory (CPU float32/float64 on a little-endian machine) or converted in pieces of at
most 16 MB. The bytes are those of ``Net.to_proto().SerializeToString()``: protobuf writes the
fields of a message in field-number order, and messages written one after the other parse as
their merge.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import BinaryIO

import torch
from google.protobuf.internal import encoder, wire_format

from recaffe.blob import Blob
from recaffe.layer import Layer
from recaffe.proto import caffe_pb2

_CHUNK_VALUES = 1 << 22  # values converted at once (16 MB of float32)
_BLOBS = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name["blobs"].number
_LAYER = caffe_pb2.NetParameter.DESCRIPTOR.fields_by_name["layer"].number
_VALUE_FIELDS = {  # (double?, diff?) -> BlobProto field number
    (double, diff): caffe_pb2.BlobProto.DESCRIPTOR.fields_by_name[
        ("double_" if double else "") + ("diff" if diff else "data")].number
    for double in (False, True) for diff in (False, True)
}


def _delimited_head(number: int, length: int) -> bytes:
    """The tag and length of a length-delimited field, by protobuf's encoder."""
    tag = wire_format.PackTag(number, wire_format.WIRETYPE_LENGTH_DELIMITED)
    return encoder._VarintBytes(tag) + encoder._VarintBytes(length)  # type: ignore[attr-defined]


class _Values:
    """A packed value field (data, diff, double_*) of one blob, written from its tensor."""

    def __init__(self, number: int, tensor: torch.Tensor, double: bool) -> None:
        self.tensor = tensor.reshape(-1)
        self.dtype = torch.float64 if double else torch.float32
        self.length = self.tensor.numel() * self.dtype.itemsize
        self.head = _delimited_head(number, self.length) if self.length else b""

    def write(self, f: BinaryIO) -> None:
        if not self.length:
            return  # protobuf writes no field for an empty packed repeated field
        f.write(self.head)
        flat = self.tensor
        if flat.device.type == "cpu" and flat.dtype == self.dtype and sys.byteorder == "little" \
                and flat.is_contiguous():
            f.write(flat.numpy().data.cast("B"))  # straight from the tensor's memory
            return
        for first in range(0, flat.numel(), _CHUNK_VALUES):
            piece = flat[first : first + _CHUNK_VALUES].to(device="cpu", dtype=self.dtype).numpy()
            f.write(piece.astype(piece.dtype.newbyteorder("<"), copy=False).tobytes())


class _BlobWriter:
    """One BlobProto as ``blobproto.blob_to_proto`` makes it: shape (field 7), float values before
    it (data 5, diff 6), double values after it (double_data 8, double_diff 9)."""

    def __init__(self, blob: Blob, write_diff: bool) -> None:
        data = blob.data
        double = data.dtype == torch.float64
        shape = caffe_pb2.BlobProto()
        shape.shape.dim.extend(int(d) for d in data.shape)  # (as blobproto.array_to_proto sets it)
        self.shape = shape.SerializeToString()
        self.values = [_Values(_VALUE_FIELDS[(double, False)], data, double)]
        if write_diff:
            self.values.append(_Values(_VALUE_FIELDS[(double, True)], blob.diff, double))
        self.double = double
        self.length = len(self.shape) + sum(len(v.head) + v.length for v in self.values)

    def write(self, f: BinaryIO) -> None:
        f.write(_delimited_head(_BLOBS, self.length))
        if self.double:
            f.write(self.shape)
        for values in self.values:
            values.write(f)
        if not self.double:
            f.write(self.shape)


def _split(param: caffe_pb2.LayerParameter) -> tuple[bytes, bytes] | None:
    """The layer's parameters serialised in two parts, the fields numbered below ``blobs`` and the
    rest, or None if the two parts do not make up the whole (then the layer is written whole)."""
    head, tail = caffe_pb2.LayerParameter(), caffe_pb2.LayerParameter()
    head.CopyFrom(param)
    tail.CopyFrom(param)
    head.DiscardUnknownFields()  # (protobuf writes unknown fields last)
    for field, _ in param.ListFields():
        (tail if field.number < _BLOBS else head).ClearField(field.name)  # type: ignore[arg-type]  # (a name from the descriptor)
    parts = head.SerializeToString(), tail.SerializeToString()
    without_blobs = caffe_pb2.LayerParameter()
    without_blobs.CopyFrom(param)
    without_blobs.ClearField("blobs")
    return parts if parts[0] + parts[1] == without_blobs.SerializeToString() else None


def _write_layer(f: BinaryIO, layer: Layer, write_diff: bool) -> None:
    parts = _split(layer.param) if type(layer).to_proto is Layer.to_proto and not layer.param.blobs else None
    if parts is None:  # a layer writing its own LayerParameter: protobuf serialises it whole
        holder = caffe_pb2.NetParameter()
        layer.to_proto(write_diff, out=holder.layer.add())
        f.write(holder.SerializeToString())
        return
    blobs = [_BlobWriter(blob, write_diff) for blob in layer.blobs]
    length = len(parts[0]) + len(parts[1]) + sum(len(_delimited_head(_BLOBS, b.length)) + b.length
                                                 for b in blobs)
    f.write(_delimited_head(_LAYER, length))
    f.write(parts[0])
    for blob in blobs:
        blob.write(f)
    f.write(parts[1])


def write_net(f: BinaryIO, name: str, layers: Iterable[Layer], write_diff: bool = False) -> None:
    """The bytes of ``Net.to_proto(write_diff).SerializeToString()`` for a net named ``name`` with
    ``layers``, written to ``f`` one blob at a time."""
    f.write(caffe_pb2.NetParameter(name=name).SerializeToString())
    for layer in layers:
        _write_layer(f, layer, write_diff)

