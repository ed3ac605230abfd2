"""Solver state files (Caffe's ``SolverState``): ``.solverstate`` (binary protobuf) or ``.solverstate.h5``.

Both hold the iteration count, the path of the weights written with the same snapshot
(``learned_net``), the multistep position (``current_step``) and the solver's history blobs in
learnable-parameter order (AdaDelta and Adam: 2N blobs, the second moments after the first).
In HDF5 they are the datasets ``iter`` and ``current_step`` (int32, one element), the
null-terminated string ``learned_net`` and the group ``history/<i>``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recaffe import errors
from recaffe.io import atomic, blobproto, h5, prototxt
from recaffe.proto import caffe_pb2

PathLike = str | os.PathLike[str]
KIND = "solver state"


@dataclass
class SolverState:
    """A solver snapshot's contents; ``learned_net`` is None when the file names no weights.

    ``resume`` is recaffe's exact-resume record (``recaffe.resume``), None in Caffe's own files.
    """

    iter: int
    current_step: int = 0
    learned_net: str | None = None
    history: list[np.ndarray] = field(default_factory=list)
    resume: caffe_pb2.RecaffeResumeState | None = None


def snapshot_filename(prefix: str, iteration: int, extension: str) -> str:
    """``<prefix>_iter_<N><extension>``, Caffe's SnapshotFilename."""
    return f"{prefix}_iter_{iteration}{extension}"


def is_hdf5_state(path: PathLike) -> bool:
    """Caffe's Restore reads HDF5 iff the file name ends in ".h5"."""
    return os.fspath(path).endswith(".h5")


def save(path: PathLike, state: SolverState, hdf5: bool) -> None:
    """Write ``path`` atomically (``recaffe.io.atomic``)."""
    (save_hdf5 if hdf5 else save_binary)(path, state)


def load(path: PathLike, history_sizes: Sequence[int] | None = None) -> SolverState:
    """Read a solver state; ``history_sizes`` (the net's param counts) are checked before reading."""
    return load_hdf5(path, history_sizes) if is_hdf5_state(path) else load_binary(path)


# ------------------------------------------------------------------------------ binary
def save_binary(path: PathLike, state: SolverState) -> None:
    proto = caffe_pb2.SolverState(iter=state.iter, current_step=state.current_step)
    if state.learned_net is not None:
        proto.learned_net = state.learned_net
    for values in state.history:
        blobproto.array_to_proto(values, out=proto.history.add())
    if state.resume is not None:
        proto.recaffe_resume.CopyFrom(state.resume)
    atomic.write_bytes(path, proto.SerializeToString(), KIND)


def load_binary(path: PathLike) -> SolverState:
    proto = prototxt.read_binary(path, caffe_pb2.SolverState())
    with errors.read_guard(path, KIND):
        history = [blobproto.array_from_proto(blob) for blob in proto.history]
    return SolverState(
        iter=proto.iter,
        current_step=proto.current_step,
        learned_net=c_string(proto.learned_net, path) if proto.HasField("learned_net") else None,
        history=history,
        resume=proto.recaffe_resume if proto.HasField("recaffe_resume") else None,
    )


# -------------------------------------------------------------------------------- HDF5
RESUME_DATASET = "recaffe_resume"  # the serialised RecaffeResumeState, as uint8 (Caffe ignores it)


def save_hdf5(path: PathLike, state: SolverState) -> None:
    atomic.write_with(path, KIND, lambda temp: _write_hdf5(temp, state))


def _write_hdf5(path: str, state: SolverState) -> None:
    with h5.h5py_module().File(path, "w") as f:
        f.create_dataset("iter", data=np.array([state.iter], dtype=np.int32))
        if state.learned_net is not None:
            _write_c_string(f, "learned_net", state.learned_net)
        f.create_dataset("current_step", data=np.array([state.current_step], dtype=np.int32))
        history = f.create_group("history")
        for i, values in enumerate(state.history):
            history.create_dataset(str(i), data=values)
        if state.resume is not None:
            f.create_dataset(RESUME_DATASET, data=np.frombuffer(state.resume.SerializeToString(), np.uint8))


def _write_c_string(f: Any, name: str, text: str) -> None:
    """A scalar, null-terminated ASCII string dataset, as HDF5's H5LTmake_dataset_string writes."""
    h5py = h5.h5py_module()
    raw = text.encode() + b"\0"
    string_type = h5py.h5t.C_S1.copy()
    string_type.set_size(len(raw))
    string_type.set_strpad(h5py.h5t.STR_NULLTERM)
    dataset = h5py.h5d.create(f.id, name.encode(), string_type, h5py.h5s.create(h5py.h5s.SCALAR))
    dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(raw, dtype=f"S{len(raw)}"))


def load_hdf5(path: PathLike, history_sizes: Sequence[int] | None = None) -> SolverState:
    with h5.open_read(path, KIND) as f, errors.read_guard(path, KIND):
        for name in ("iter", "current_step", "history"):
            if name not in f:
                raise errors.unreadable(path, KIND, f"it has no {name!r}",
                                        "It is not a Caffe HDF5 solver state")
        history_group = f["history"]
        if not isinstance(history_group, h5.h5py_module().Group):
            raise errors.unreadable(path, KIND, "'history' is not a group")
        count = len(history_group)
        if history_sizes is not None and count != len(history_sizes):
            raise errors.unreadable(path, KIND, f"it holds {count} history blobs, the solver needs "
                                    f"{len(history_sizes)}")
        history = []
        for i in range(count):
            node = h5.dataset(history_group, str(i), path, KIND)
            expected = history_sizes[i] if history_sizes is not None else None
            history.append(_numeric(h5.read_array(node, path, KIND, expected), node.name, path))
        return SolverState(
            iter=_int_scalar(f, "iter", path),
            current_step=_int_scalar(f, "current_step", path),
            learned_net=_c_string(f, path) if "learned_net" in f else None,
            history=history,
            resume=_resume(f, path) if RESUME_DATASET in f else None,
        )


def _int_scalar(f: Any, name: str, path: PathLike) -> int:
    """A dataset holding one integer (Caffe's H5LTread_dataset_int into an int)."""
    values = h5.read_array(h5.dataset(f, name, path, KIND), path, KIND, expected=1).reshape(-1)
    value = values[0]
    if values.dtype.kind not in "iuf" or not np.isfinite(value) or value != int(value) \
            or not -(2**31) <= int(value) < 2**31:
        raise errors.unreadable(path, KIND,
                                f"dataset {name!r} must hold one 32-bit integer, got {value.item()!r}")
    return int(value)


def _c_string(f: Any, path: PathLike) -> str:
    raw = h5.read_array(h5.dataset(f, "learned_net", path, KIND), path, KIND, expected=1).reshape(-1)[0]
    if not isinstance(raw, (bytes, np.bytes_, str)):
        raise errors.unreadable(path, KIND, f"dataset 'learned_net' must hold a string, got {raw!r}")
    return c_string(raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw), path)


def c_string(text: str | bytes, path: PathLike) -> str:
    """``learned_net`` as Caffe opens it (a C string: up to the first null byte); never empty. Bytes
    that are not UTF-8 (protobuf hands them over as bytes) are kept as the file system's bytes."""
    text = (os.fsdecode(text) if isinstance(text, bytes) else text).split("\0", 1)[0]
    if not text:
        raise errors.unreadable(path, KIND, "'learned_net' is an empty file name")
    return text


def _resume(f: Any, path: PathLike) -> caffe_pb2.RecaffeResumeState:
    raw = h5.read_array(h5.dataset(f, RESUME_DATASET, path, KIND), path, KIND)
    if raw.dtype != np.uint8:
        raise errors.unreadable(path, KIND, f"dataset {RESUME_DATASET!r} must hold bytes (uint8)")
    return prototxt.parse_binary(raw.tobytes(), caffe_pb2.RecaffeResumeState(), path)


def _numeric(values: np.ndarray, name: str, path: PathLike) -> np.ndarray:
    if values.dtype.kind not in "fiu":
        raise errors.unreadable(path, KIND, f"dataset {name!r} is not numeric ({values.dtype})")
    return values if values.dtype.kind == "f" else values.astype(np.float32)
