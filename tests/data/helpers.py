"""Small databases, images and Datums built in a test's tmp_path."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from PIL import Image

from recaffe.blob import Blob
from recaffe.data import db
from recaffe.io import prototxt
from recaffe.layer import Layer
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS

BACKENDS = ["lmdb", "leveldb"]


def need_backend(backend: str) -> None:
    """Skip a LevelDB test where the optional plyvel package is not installed."""
    if backend == "leveldb":
        pytest.importorskip("plyvel")


def make_datum(label: int, shape: tuple[int, int, int], values: np.ndarray | int) -> caffe_pb2.Datum:
    pixels = np.broadcast_to(np.asarray(values, dtype=np.uint8), shape)
    c, h, w = shape
    return caffe_pb2.Datum(channels=c, height=h, width=w, label=label,
                           data=np.ascontiguousarray(pixels).tobytes())


def write_db(path: pathlib.Path, records: dict[str, caffe_pb2.Datum | bytes], backend: str = "lmdb") -> str:
    with db.open_db(path, backend, "new") as database:
        txn = database.transaction()
        for key, value in records.items():
            txn.put(key, value if isinstance(value, bytes) else value.SerializeToString())
        txn.commit()
    return str(path)


def fill_db(path: pathlib.Path, backend: str = "lmdb", unique_pixels: bool = False) -> str:
    """Caffe's test_data_layer Fill: 5 Datums (2, 3, 4), label i, pixels j (unique) or i."""
    records = {
        str(i): make_datum(i, (2, 3, 4), np.arange(24).reshape(2, 3, 4) if unique_pixels else i)
        for i in range(5)
    }
    return write_db(path, records, backend)


def write_png(path: pathlib.Path, pixels: np.ndarray) -> str:
    """Save an (H, W, 3) RGB or (H, W) gray uint8 array as PNG."""
    Image.fromarray(pixels).save(path)
    return str(path)


def read_all(path: str, backend: str = "lmdb") -> list[tuple[bytes, bytes]]:
    with db.open_db(path, backend) as database:
        cursor, out = database.cursor(), []
        while cursor.valid:
            out.append((cursor.key(), cursor.value()))
            cursor.next()
    return out


def build_layer(layer_type: str, snippet: str, phase: int = caffe_pb2.TRAIN, tops: int = 2,
                top_names: tuple[str, ...] = ("data", "label")) -> tuple[Layer, list[Blob]]:
    """A set-up layer of ``layer_type`` with ``snippet`` as its other fields, and its top blobs."""
    names = "".join(f' top: "{name}"' for name in top_names[:tops])
    text = f'name: "d" type: "{layer_type}"{names} {snippet}'
    param = prototxt.parse_text(text, caffe_pb2.LayerParameter())
    param.phase = phase
    layer = LAYERS.get(layer_type)(param)
    top = [Blob() for _ in range(tops)]
    layer.setup([], top)
    return layer, top


def forward(layer: Layer, top: list[Blob]) -> list[np.ndarray]:
    layer.run_forward([], top)
    return [blob.data.numpy().copy() for blob in top]
