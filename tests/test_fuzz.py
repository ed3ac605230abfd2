"""Fuzzing every file reader (seeded, bounded): each mutated input is read successfully or raises a
recaffe error (``RecaffeError``) whose message names the file. No other exception, no signal.

Mutations of a valid file: flipped bytes, truncation, inserted and duplicated runs, overwritten runs,
and for text files numbers replaced by extreme ones. The LMDB cases run in a subprocess, so a crash
of the native library (SIGBUS, SIGSEGV) fails the test instead of the test run.
"""

from __future__ import annotations

import io
import logging
import pathlib
import random
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable

import h5py
import numpy as np
import pytest
from PIL import Image

from recaffe import Net, errors
from recaffe.data import datum, hdf5, image, readers
from recaffe.io import binaryproto, prototxt, snapshot
from recaffe.proto import caffe_pb2

CASES = 300  # per reader
ROOT = pathlib.Path(__file__).resolve().parents[1]

NET = """name: "fuzz"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip" top: "out" inner_product_param { num_output: 2 } }
"""
_EXTREMES = ["0", "-1", "2147483648", "9223372036854775807", "1e308", "nan", "-inf", "4294967296"]


def mutate(data: bytes, rnd: random.Random, text: bool = False) -> bytes:
    out = bytearray(data)
    for _ in range(rnd.randint(1, 3)):
        kind = rnd.randrange(6 if text else 5)
        at = rnd.randrange(max(len(out), 1))
        if kind == 0:
            for _ in range(rnd.randint(1, 8)):
                out[rnd.randrange(len(out))] = rnd.randrange(256)
        elif kind == 1:
            del out[at:]
        elif kind == 2:
            out[at:at] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 16)))
        elif kind == 3:
            out[at:at] = out[at : at + rnd.randint(1, 64)]
        elif kind == 4:
            out[at : at + rnd.randint(1, 32)] = bytes([rnd.choice((0, 0xFF))]) * rnd.randint(1, 32)
        else:
            numbers = list(re.finditer(rb"-?\d+(\.\d+)?", bytes(out)))
            if numbers:
                m = rnd.choice(numbers)
                out[m.start() : m.end()] = rnd.choice(_EXTREMES).encode()
        if not out:
            break
    return bytes(out)


def check(path: pathlib.Path, read: Callable[[pathlib.Path], object]) -> str:
    """Read one mutated file: success, or a RecaffeError naming it."""
    try:
        read(path)
    except errors.RecaffeError as e:
        assert str(path) in str(e) or path.name in str(e), f"the error does not name {path}: {e}"
        return "error"
    return "ok"


def fuzz(tmp_path: pathlib.Path, name: str, good: bytes, read: Callable[[pathlib.Path], object],
         seed: int, text: bool = False) -> dict[str, int]:
    rnd = random.Random(seed)
    outcomes = {"ok": 0, "error": 0}
    for i in range(CASES):
        path = tmp_path / f"{i}{name}"
        path.write_bytes(mutate(good, rnd, text))
        outcomes[check(path, read)] += 1
        path.unlink()
    assert outcomes["error"] > 0  # the mutations do break files
    return outcomes


@pytest.fixture(autouse=True)
def quiet() -> None:
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


@pytest.fixture(scope="module")
def net() -> Net:
    return Net(prototxt.parse_text(NET, caffe_pb2.NetParameter()), phase=caffe_pb2.TEST)


def test_prototxt(tmp_path) -> None:
    fuzz(tmp_path, ".prototxt", NET.encode(), prototxt.read_net_param, seed=1, text=True)


def test_solver_prototxt(tmp_path) -> None:
    good = b'net: "x.prototxt" base_lr: 0.01 lr_policy: "step" stepsize: 10 gamma: 0.1 max_iter: 100\n'
    fuzz(tmp_path, ".prototxt", good, prototxt.read_solver_param, seed=2, text=True)


def test_caffemodel(tmp_path, net) -> None:
    good = net.to_proto().SerializeToString()
    fuzz(tmp_path, ".caffemodel", good, net.copy_trained_layers_from, seed=3)


def test_hdf5_weights(tmp_path, net) -> None:
    net.save_hdf5(tmp_path / "good.h5")
    good = (tmp_path / "good.h5").read_bytes()
    fuzz(tmp_path, ".caffemodel.h5", good, net.copy_trained_layers_from, seed=4)


def test_binaryproto_mean(tmp_path) -> None:
    binaryproto.write_mean(tmp_path / "good.binaryproto", np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    good = (tmp_path / "good.binaryproto").read_bytes()
    fuzz(tmp_path, ".binaryproto", good, binaryproto.read_mean, seed=5)


def _state() -> snapshot.SolverState:
    return snapshot.SolverState(iter=7, current_step=1, learned_net="w.caffemodel",
                                history=[np.ones((4, 3), np.float32), np.zeros(4, np.float32)])


def test_binary_solverstate(tmp_path) -> None:
    snapshot.save_binary(tmp_path / "good.solverstate", _state())
    fuzz(tmp_path, ".solverstate", (tmp_path / "good.solverstate").read_bytes(), snapshot.load, seed=6)


def test_hdf5_solverstate(tmp_path) -> None:
    snapshot.save_hdf5(tmp_path / "good.solverstate.h5", _state())
    good = (tmp_path / "good.solverstate.h5").read_bytes()
    fuzz(tmp_path, ".solverstate.h5", good, lambda p: snapshot.load(p, [12, 4]), seed=7)


def test_hdf5_data_file(tmp_path) -> None:
    with h5py.File(tmp_path / "good.h5", "w") as f:
        f["data"] = np.arange(30, dtype=np.float32).reshape(10, 3)
        f["label"] = np.arange(10, dtype=np.int32)

    def read(path: pathlib.Path) -> object:
        try:
            return hdf5.load_datasets(str(path), ["data", "label"], np.float32)
        except errors.RecaffeError as e:  # HDF5Data names its file in its DataErrors
            raise errors.FileReadError(str(e), path) from e

    fuzz(tmp_path, ".h5", (tmp_path / "good.h5").read_bytes(), read, seed=8)


def test_image_list(tmp_path) -> None:
    good = b"images/cat 1.jpg 0\nimages/dog.png 1\n\nbird.bmp 2\n"
    fuzz(tmp_path, ".txt", good, lambda p: readers.read_image_list(str(p)), seed=9, text=True)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP"])
def test_images(tmp_path, fmt) -> None:
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (9, 7, 3)).astype(np.uint8)).save(out, fmt)
    fuzz(tmp_path, f".{fmt.lower()}", out.getvalue(), lambda p: image.read_image(p, 5, 5), seed=10)


def test_datums(tmp_path) -> None:
    good = caffe_pb2.Datum(channels=1, height=2, width=3, label=4, data=bytes(range(6))).SerializeToString()

    def read(path: pathlib.Path) -> object:
        where = f"record of {path}"
        return datum.datum_array(datum.parse_datum(path.read_bytes(), where), where=where)

    fuzz(tmp_path, ".datum", good, read, seed=11)


_LMDB_FUZZ = textwrap.dedent("""
    import os, random, shutil, sys
    from recaffe import errors
    from recaffe.data import datum, db
    from tests.test_fuzz import mutate
    good, work, cases = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rnd = random.Random(12)
    counts = {"ok": 0, "error": 0}
    raw = open(os.path.join(good, "data.mdb"), "rb").read()
    for i in range(cases):
        path = os.path.join(work, f"db{i}")
        os.mkdir(path)
        with open(os.path.join(path, "data.mdb"), "wb") as f:
            f.write(mutate(raw, rnd))
        try:
            with db.open_db(path, "lmdb") as database:
                cursor = database.cursor()
                while cursor.valid:
                    where = f"record of {path}"
                    datum.datum_array(datum.parse_datum(cursor.value(), where), where=where)
                    cursor.next()
            counts["ok"] += 1
        except errors.RecaffeError as e:
            assert path in str(e), f"the error does not name {path}: {e}"
            counts["error"] += 1
        shutil.rmtree(path)
    print(counts["ok"], counts["error"])
""")


def test_lmdb(tmp_path) -> None:
    from tests.data.helpers import make_datum, write_db

    good = write_db(tmp_path / "good", {f"{i:04d}": make_datum(i % 2, (1, 8, 8), i) for i in range(60)})
    (tmp_path / "work").mkdir()
    result = subprocess.run([sys.executable, "-c", _LMDB_FUZZ, good, str(tmp_path / "work"), str(CASES)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, f"exit status {result.returncode}: {result.stderr[-2000:]}"
    ok, error = map(int, result.stdout.split())
    assert ok + error == CASES and error > 0


def test_hdf5_source_list(tmp_path) -> None:
    good = b"data/train0.h5\ndata/train1.h5 data/train2.h5\n"
    fuzz(tmp_path, ".txt", good, lambda p: hdf5.read_source_list(str(p)), seed=13, text=True)
