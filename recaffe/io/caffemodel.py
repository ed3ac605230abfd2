"""Loading a ``.caffemodel`` without holding the file or the parsed message in memory.

Parsing the whole NetParameter costs the file's bytes plus the parsed message (2x the weights)
before a single value reaches a tensor. Instead ``read_trained_layers`` walks the file's fields
with protobuf's own varint decoder: a first pass notes where each layer's blobs lie (seeking over
their values), protobuf parses each blob's small shape fields, and a blob's packed values are read
from the file straight into the target tensor when it is loaded (through pieces of at most 16 MB
where a conversion is due: double values, or a tensor that is not float32 on the CPU). The peak
while loading is the weights themselves plus at most one such piece.

The layers and blobs given are those ``legacy.trained_layers`` gives for the parsed message, in
every format (current, V1 ``layers``, V0 ``layers { layer {} }``), so the V0/V1 upgrades are not
needed. Unusual encodings (unpacked values, a value field split in several runs) fall back to
parsing that one blob with protobuf.
"""

from __future__ import annotations

import abc
import io
import os
import sys
from collections.abc import Iterator
from typing import NamedTuple, TypeVar

import numpy as np
import torch
from google.protobuf import message
from google.protobuf.internal import decoder, wire_format

from recaffe.blob import Blob
from recaffe.io import blobproto, legacy
from recaffe.io.prototxt import ProtoFileError, not_binary_error
from recaffe.proto import caffe_pb2

M = TypeVar("M", bound=message.Message)
Range = tuple[int, int]  # [start, end) byte offsets in the file

_CHUNK_BYTES = 1 << 24
_HEAD = 20  # bytes: a field's tag and length (two varints of at most 10 bytes)
_SMALL_LAYER = 4096  # bytes: a LayerParameter this small is parsed whole when it holds no blobs
_DELIMITED = wire_format.WIRETYPE_LENGTH_DELIMITED
_VARINT = wire_format.WIRETYPE_VARINT
# float32 values as stored: read as they are on a little-endian machine
_FLOAT32 = np.dtype("<f4") if sys.byteorder == "little" else None
_VALUE_FIELDS = {  # BlobProto's packed value fields: number -> (name, little-endian dtype)
    caffe_pb2.BlobProto.DESCRIPTOR.fields_by_name[name].number: (name, np.dtype(dtype))
    for name, dtype in (("data", "<f4"), ("diff", "<f4"), ("double_data", "<f8"), ("double_diff", "<f8"))
}
_NET = caffe_pb2.NetParameter.DESCRIPTOR.fields_by_name
_LAYER = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name
_V1 = caffe_pb2.V1LayerParameter.DESCRIPTOR.fields_by_name
_V0 = caffe_pb2.V0LayerParameter.DESCRIPTOR.fields_by_name


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """The varint at ``data[at]`` and the position after it (one-byte varints, the usual tags and
    short lengths, without a call into protobuf's decoder)."""
    byte = data[at]
    if byte < 0x80:
        return byte, at + 1
    return decoder._DecodeVarint(data, at)  # type: ignore[attr-defined]  # (not in the stubs)


class StoredBlob(abc.ABC):
    """A source blob: ``header``, a BlobProto with (at least) its shape fields, and ``load_into``."""

    header: caffe_pb2.BlobProto

    @abc.abstractmethod
    def load_into(self, blob: Blob) -> None:
        """Caffe's Blob::FromProto without reshaping: data (and diff when stored) into ``blob``."""


class MessageBlob(StoredBlob):
    """A blob of a parsed NetParameter (weights passed in memory)."""

    def __init__(self, proto: caffe_pb2.BlobProto) -> None:
        self.header = proto

    def load_into(self, blob: Blob) -> None:
        blobproto.load_into_blob(blob, self.header, reshape=False)


class _Values(NamedTuple):
    offset: int
    length: int  # bytes
    dtype: np.dtype

    @property
    def size(self) -> int:
        return self.length // self.dtype.itemsize


class _Field(NamedTuple):
    number: int
    wire_type: int
    start: int  # where the tag starts
    offset: int  # where the payload starts (after the length of a length-delimited field)
    value: int  # a varint's value, else the payload's length in bytes

    @property
    def end(self) -> int:
        return self.offset + (0 if self.wire_type == wire_format.WIRETYPE_VARINT else self.value)


class _WireReader:
    """A binary protobuf file read field by field, only what is asked for."""

    _WINDOW = 1 << 13  # bytes read at once for the small fields (tags, lengths, names, shapes)

    def __init__(self, file: io.BufferedReader, path: str) -> None:
        self.file, self.path = file, path
        self.size = os.fstat(file.fileno()).st_size
        self._window_start, self._window = 0, b""

    def fail(self, problem: str) -> ProtoFileError:
        self.file.seek(0)
        return not_binary_error(self.path, "NetParameter", problem, self.file.read(1 << 16))

    def fields(self, start: int, end: int) -> Iterator[_Field]:
        """The fields of the message in bytes [start, end): tags and lengths are decoded in place
        in the window (a field's payload is not read)."""
        offset = start
        while offset < end:
            window, base = self._window, self._window_start
            at = offset - base
            if at < 0 or at + _HEAD > len(window):
                window, base = self._window_at(offset)
                at = offset - base
            try:
                tag, at = _varint(window, at)
                if tag >> 3 == 0:
                    raise self.fail(f"field number 0 at byte {offset}")
                wire_type = tag & 7
                if wire_type in (_VARINT, _DELIMITED):
                    value, at = _varint(window, at)
                elif wire_type in (wire_format.WIRETYPE_FIXED32, wire_format.WIRETYPE_FIXED64):
                    value = 4 if wire_type == wire_format.WIRETYPE_FIXED32 else 8
                else:
                    raise self.fail(f"unsupported wire type {wire_type} at byte {offset}")
            except (IndexError, message.DecodeError) as e:
                raise self.fail(f"truncated varint at byte {offset}") from e
            payload = base + at
            if payload > end:
                raise self.fail(f"truncated varint at byte {offset}")
            stop = payload if wire_type == _VARINT else payload + value
            if stop > end:
                raise self.fail(f"field {tag >> 3} at byte {offset} runs past the end of its message")
            yield _Field(tag >> 3, wire_type, offset, payload, value)
            offset = stop

    def _window_at(self, offset: int) -> tuple[bytes, int]:
        """The window and where it starts, holding the ``_HEAD`` bytes from ``offset`` (or all up to
        the end of the file)."""
        start = offset - self._window_start
        to_the_end = self._window_start + len(self._window) >= self.size
        if start < 0 or (start + _HEAD > len(self._window) and not to_the_end):
            self._load_window(offset)
        return self._window, self._window_start

    def _load_window(self, offset: int) -> None:
        self.file.seek(offset)
        self._window_start, self._window = offset, self.file.read(self._WINDOW)

    def read(self, offset: int, length: int) -> bytes:
        start = offset - self._window_start
        if not (start >= 0 and start + length <= len(self._window)):
            if length > self._WINDOW:
                self.file.seek(offset)
                return self.file.read(length)
            self._load_window(offset)
            start = 0
        return self._window[start : start + length]

    def parse(self, data: bytes, msg: M) -> M:
        try:
            msg.ParseFromString(data)
        except message.DecodeError as e:
            raise self.fail(str(e)) from e
        return msg

    def text(self, field: _Field) -> str:
        try:
            return self.read(field.offset, field.value).decode("utf-8")
        except UnicodeDecodeError as e:
            raise self.fail(f"the string at byte {field.offset} is not UTF-8") from e

    def read_values(self, values: _Values, target: torch.Tensor) -> None:
        """Packed little-endian values into ``target`` (contiguous, of the same count)."""
        flat = target.view(-1)
        self.file.seek(values.offset)
        if values.dtype == _FLOAT32 and target.dtype == torch.float32 and target.device.type == "cpu":
            if self.file.readinto(flat.numpy().data.cast("B")) != values.length:
                raise self.fail(f"the file ends inside the values at byte {values.offset}")
            return
        step = _CHUNK_BYTES // values.dtype.itemsize
        native = values.dtype.newbyteorder("=")
        for first in range(0, values.size, step):
            n = min(step, values.size - first)
            piece = np.frombuffer(self.file.read(n * values.dtype.itemsize), values.dtype).astype(native)
            flat[first : first + n].copy_(torch.from_numpy(piece))


class FileBlob(StoredBlob):
    """A BlobProto in the file: its shape fields parsed, its values read when loaded."""

    def __init__(self, reader: _WireReader, blob: Range) -> None:
        self._reader = reader
        self._values: dict[str, _Values] = {}
        self._whole = False  # True when protobuf parsed the blob, values included
        header = bytearray()
        for field in reader.fields(*blob):
            kind = _VALUE_FIELDS.get(field.number)
            if kind is None:
                header += reader.read(field.start, field.end - field.start)
            elif field.wire_type != _DELIMITED or kind[0] in self._values:
                self._whole = True  # unpacked or split values: protobuf reads this blob whole
                self.header = reader.parse(reader.read(blob[0], blob[1] - blob[0]), caffe_pb2.BlobProto())
                return
            else:
                self._values[kind[0]] = _Values(field.offset, field.value, kind[1])
        self.header = reader.parse(bytes(header), caffe_pb2.BlobProto())

    def load_into(self, blob: Blob) -> None:
        if self._whole:
            blobproto.load_into_blob(blob, self.header, reshape=False)
            return
        data = self._values.get("double_data") or self._values.get("data")
        diff = self._values.get("double_diff") or self._values.get("diff")
        for what, values in (("data", data), ("diff", diff)):
            count = 0 if values is None else values.size
            if count != blob.count() and not (what == "diff" and count == 0):
                raise ValueError(f"{self._reader.path}: BlobProto of shape "
                                 f"{blobproto.proto_shape(self.header)} holds {count} {what} values, "
                                 f"expected {blob.count()}")
        if data is not None:
            with blob.overwriting_data() as target:
                self._reader.read_values(data, target)
        if diff is not None:
            self._reader.read_values(diff, blob.diff)


def _layer_blobs(reader: _WireReader, message_range: Range) -> tuple[str, list[Range]]:
    """``_named_blobs`` of a LayerParameter. A small one (most layers of a net hold no weights)
    is parsed by protobuf at once, instead of field by field; one with blobs is walked."""
    start, end = message_range
    if end - start <= _SMALL_LAYER:
        layer = reader.parse(reader.read(start, end - start), caffe_pb2.LayerParameter())
        if not layer.blobs:
            return layer.name, []
    return _named_blobs(reader, message_range, _LAYER["name"].number, _LAYER["blobs"].number)


def _named_blobs(reader: _WireReader, message_range: Range, name_field: int,
                 blobs_field: int) -> tuple[str, list[Range]]:
    """A layer's name (the last one written wins, as protobuf merges) and its blobs' byte ranges."""
    name, blobs = "", []
    for field in reader.fields(*message_range):
        if field.wire_type != _DELIMITED:
            continue
        if field.number == name_field:
            name = reader.text(field)
        elif field.number == blobs_field:
            blobs.append((field.offset, field.end))
    return name, blobs


def read_trained_layers(path: str | os.PathLike[str]) -> Iterator[tuple[str, list[StoredBlob]]]:
    """``(layer name, blobs)`` of a ``.caffemodel`` in any format, as ``legacy.trained_layers``."""
    source = os.fspath(path)
    try:
        file = open(source, "rb")  # noqa: SIM115 (closed when the generator ends)
    except OSError as e:
        raise ProtoFileError(f"cannot open {source!r}: {e.strerror}") from e
    with file:
        reader = _WireReader(file, source)
        layers: list[tuple[str, list[Range]]] = []
        v1_layers: list[tuple[str, list[Range], list[Range]]] = []  # name, blobs, V0 'layer' ranges
        for field in reader.fields(0, reader.size):
            if field.wire_type != _DELIMITED:
                continue
            span = (field.offset, field.end)
            if field.number == _NET["layer"].number:
                layers.append(_layer_blobs(reader, span))
            elif field.number == _NET["layers"].number:
                name, blobs = _named_blobs(reader, span, _V1["name"].number, _V1["blobs"].number)
                v0 = [(f.offset, f.end) for f in reader.fields(*span)
                      if f.number == _V1["layer"].number and f.wire_type == _DELIMITED]
                v1_layers.append((name, blobs, v0))
        entries = _legacy_entries(reader, layers, v1_layers) if v1_layers else layers
        for name, blobs in entries:
            yield name, [FileBlob(reader, blob) for blob in blobs]


def _legacy_entries(reader: _WireReader, layers: list[tuple[str, list[Range]]],
                    v1_layers: list[tuple[str, list[Range], list[Range]]]) -> list[tuple[str, list[Range]]]:
    """The names and blobs the V0 -> V1 -> current upgrades give (see ``legacy.trained_layers``)."""
    if any(v0 for _, _, v0 in v1_layers):  # the V0 upgrade drops 'layer' entries and padding layers
        entries = []
        for _, _, v0 in v1_layers:
            name, type_, blobs = "", "", []
            for span in v0:  # a singular message field written twice merges
                for field in reader.fields(*span):
                    if field.wire_type != _DELIMITED:
                        continue
                    if field.number == _V0["name"].number:
                        name = reader.text(field)
                    elif field.number == _V0["type"].number:
                        type_ = reader.text(field)
                    elif field.number == _V0["blobs"].number:
                        blobs.append((field.offset, field.end))
            if type_ != "padding":
                entries.append((name, blobs))
        return entries
    if layers:
        raise legacy.mixed_formats_error(reader.path, v1_layers[0][0])
    return [(name, blobs) for name, blobs, _ in v1_layers]
