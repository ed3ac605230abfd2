"""Solver state files (Caffe's ``SolverState``): ``.solverstate`` (binary protobuf) or ``.solverstate.h5``.

Both hold the iteration count, the path of the weights written with the same snapshot
(``learned_net``), the multistep position (``current_step``) and the solver's history blobs in
learnable-parameter order (AdaDelta and Adam: 2N blobs, the second moments after the first).
In HDF5 they are the datasets ``iter`` and ``current_step`` (int32, one element), the
null-terminated string ``learned_net`` and the group ``history/<i>``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from recaffe.io import blobproto, prototxt
from recaffe.proto import caffe_pb2

PathLike = str | os.PathLike[str]


@dataclass
class SolverState:
    """A solver snapshot's contents; ``learned_net`` is None when the file names no weights."""

    iter: int
    current_step: int = 0
    learned_net: str | None = None
    history: list[np.ndarray] = field(default_factory=list)


def snapshot_filename(prefix: str, iteration: int, extension: str) -> str:
    """``<prefix>_iter_<N><extension>``, Caffe's SnapshotFilename."""
    return f"{prefix}_iter_{iteration}{extension}"


def is_hdf5_state(path: PathLike) -> bool:
    """Caffe's Restore reads HDF5 iff the file name ends in ".h5"."""
    return os.fspath(path).endswith(".h5")


def save(path: PathLike, state: SolverState, hdf5: bool) -> None:
    (save_hdf5 if hdf5 else save_binary)(path, state)


def load(path: PathLike) -> SolverState:
    return load_hdf5(path) if is_hdf5_state(path) else load_binary(path)


# ------------------------------------------------------------------------------ binary
def save_binary(path: PathLike, state: SolverState) -> None:
    proto = caffe_pb2.SolverState(iter=state.iter, current_step=state.current_step)
    if state.learned_net is not None:
        proto.learned_net = state.learned_net
    for values in state.history:
        blobproto.array_to_proto(values, out=proto.history.add())
    prototxt.write_binary(path, proto)


def load_binary(path: PathLike) -> SolverState:
    proto = prototxt.read_binary(path, caffe_pb2.SolverState())
    return SolverState(
        iter=proto.iter,
        current_step=proto.current_step,
        learned_net=proto.learned_net if proto.HasField("learned_net") else None,
        history=[blobproto.array_from_proto(blob) for blob in proto.history],
    )


# -------------------------------------------------------------------------------- HDF5
def _h5py():  # type: ignore[no-untyped-def]
    import h5py

    return h5py


def save_hdf5(path: PathLike, state: SolverState) -> None:
    h5py = _h5py()
    with h5py.File(path, "w") as f:
        f.create_dataset("iter", data=np.array([state.iter], dtype=np.int32))
        if state.learned_net is not None:
            _write_c_string(f, "learned_net", state.learned_net)
        f.create_dataset("current_step", data=np.array([state.current_step], dtype=np.int32))
        history = f.create_group("history")
        for i, values in enumerate(state.history):
            history.create_dataset(str(i), data=values)


def _write_c_string(f, name: str, text: str) -> None:  # type: ignore[no-untyped-def]
    """A scalar, null-terminated ASCII string dataset, as HDF5's H5LTmake_dataset_string writes."""
    h5py = _h5py()
    raw = text.encode() + b"\0"
    string_type = h5py.h5t.C_S1.copy()
    string_type.set_size(len(raw))
    string_type.set_strpad(h5py.h5t.STR_NULLTERM)
    dataset = h5py.h5d.create(f.id, name.encode(), string_type, h5py.h5s.create(h5py.h5s.SCALAR))
    dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(raw, dtype=f"S{len(raw)}"))


def load_hdf5(path: PathLike) -> SolverState:
    h5py = _h5py()
    where = os.fspath(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise prototxt.ProtoFileError(f"cannot open solver state {where!r}: {e}") from e
    with f:
        for name in ("iter", "current_step", "history"):
            if name not in f:
                raise prototxt.ProtoFileError(f"{where!r} has no {name!r}: not a Caffe HDF5 solver state")
        learned_net = None
        if "learned_net" in f:
            raw = f["learned_net"][()]
            learned_net = (raw.decode() if isinstance(raw, bytes) else str(raw)).rstrip("\0")
        history_group = f["history"]
        history = []
        for i in range(len(history_group)):
            if str(i) not in history_group:
                raise prototxt.ProtoFileError(f"{where!r}: history/{i} is missing")
            history.append(_numeric(history_group[str(i)], where))
        return SolverState(
            iter=int(np.asarray(f["iter"]).reshape(-1)[0]),
            current_step=int(np.asarray(f["current_step"]).reshape(-1)[0]),
            learned_net=learned_net,
            history=history,
        )


def _numeric(dataset, where: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    values = np.asarray(dataset)
    if values.dtype.kind not in "fiu":
        raise prototxt.ProtoFileError(f"{where!r}: dataset {dataset.name} is not numeric ({values.dtype})")
    return values if values.dtype.kind == "f" else values.astype(np.float32)
