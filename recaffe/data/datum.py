"""Caffe's ``Datum`` records: parsing, pixel arrays, and building them from images (``util/io.cpp``).

A raw Datum holds ``channels × height × width`` uint8 bytes in CHW order (BGR for colour images)
in ``data``, or the same count of ``float_data``; an encoded one holds a whole image file in
``data`` with ``encoded: true`` and no sizes. Arrays here are CHW; images are HWC (``image.py``).
"""

from __future__ import annotations

import os

import numpy as np
from google.protobuf import message

from recaffe.data import DataError, image
from recaffe.proto import caffe_pb2


def parse_datum(value: bytes, where: str = "record") -> caffe_pb2.Datum:
    """A Datum from its serialized bytes; ``where`` names the record in the error."""
    datum = caffe_pb2.Datum()
    try:
        datum.ParseFromString(value)
    except message.DecodeError as e:
        raise DataError(f"{where} is not a valid Datum ({e})") from e
    return datum


def datum_array(datum: caffe_pb2.Datum, flag: str = "native", where: str = "record") -> np.ndarray:
    """The datum's values as (C, H, W): uint8 from ``data``, else float32 from ``float_data``.

    Encoded datums are decoded (``flag`` as in ``image.decode_image``).
    """
    if datum.encoded:
        try:
            return np.ascontiguousarray(image.decode_image(datum.data, flag).transpose(2, 0, 1))
        except DataError as e:
            raise DataError(f"{where}: {e}") from e
    shape = (datum.channels, datum.height, datum.width)
    count = datum.channels * datum.height * datum.width
    if datum.channels <= 0:
        raise DataError(f"{where}: a raw Datum needs channels > 0, got shape {shape}")
    if datum.data:
        values = np.frombuffer(datum.data, dtype=np.uint8)
        kind = "uint8 data bytes"
    else:
        values = np.asarray(datum.float_data, dtype=np.float32)
        kind = "float_data values"
    if values.size != count:
        raise DataError(f"{where}: holds {values.size} {kind} but its shape {shape} needs {count}")
    return values.reshape(shape)


def array_to_datum(array: np.ndarray, label: int = 0) -> caffe_pb2.Datum:
    """A raw Datum from a (C, H, W) array: uint8 into ``data``, anything else into ``float_data``."""
    c, h, w = array.shape
    datum = caffe_pb2.Datum(channels=c, height=h, width=w, label=int(label))
    if array.dtype == np.uint8:
        datum.data = np.ascontiguousarray(array).tobytes()
    else:
        datum.float_data.extend(np.asarray(array, dtype=np.float32).reshape(-1).tolist())
    return datum


def image_to_datum(img: np.ndarray, label: int = 0) -> caffe_pb2.Datum:
    """``CVMatToDatum``: an (H, W, C) uint8 image as a raw CHW Datum."""
    return array_to_datum(np.ascontiguousarray(img.transpose(2, 0, 1)), label)


def read_file_to_datum(path: str | os.PathLike[str], label: int = 0) -> caffe_pb2.Datum:
    """``ReadFileToDatum``: the file's bytes as an encoded Datum."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"could not open or find the file {os.fspath(path)!r}: {e.strerror}") from e
    return caffe_pb2.Datum(data=data, label=int(label), encoded=True)


def read_image_to_datum(path: str, label: int, height: int = 0, width: int = 0, is_color: bool = True,
                        encoding: str = "") -> caffe_pb2.Datum:
    """``ReadImageToDatum``: a raw Datum, or an encoded one when ``encoding`` is set.

    An encoded datum keeps the file's own bytes when nothing would change them (same colour mode,
    no resize, matching extension); otherwise the decoded image is re-encoded as ``encoding``.
    """
    img = image.read_image(path, height, width, is_color)
    if not encoding:
        return image_to_datum(img, label)
    if (img.shape[2] == 3) == is_color and not height and not width and _ext_matches(path, encoding):
        return read_file_to_datum(path, label)
    return caffe_pb2.Datum(data=image.encode_image(img, encoding), label=int(label), encoded=True)


def _ext_matches(path: str, encoding: str) -> bool:
    ext = path.rsplit(".", 1)[-1].lower()
    encoding = encoding.lower()
    return ext == encoding or (encoding == "jpg" and ext == "jpeg")
