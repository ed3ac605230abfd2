"""Snapshots: file names and layouts (binary and HDF5), restore → continue equals an
uninterrupted run bit for bit, Caffe's own solverstate files, and restore's checks."""

from __future__ import annotations

import os
import pathlib

import h5py
import numpy as np
import pytest
import torch

from recaffe.io import snapshot
from recaffe.proto import caffe_pb2
from recaffe.solver import SolverError
from tests.conftest import GOLDEN
from tests.solvers import least_squares as ls

SOLVERS = [("SGD", 0.01, 0.9), ("Nesterov", 0.01, 0.9), ("AdaGrad", 0.1, 0.0), ("RMSProp", 0.01, 0.0),
           ("AdaDelta", 1.0, 0.95), ("Adam", 0.01, 0.9)]
FORMATS = {"binary": (".caffemodel", ".solverstate"), "hdf5": (".caffemodel.h5", ".solverstate.h5")}


def snapshot_param(kind: str, lr: float, momentum: float, prefix: pathlib.Path, fmt: str, **fields):
    extra = (f'snapshot_prefix: "{prefix}" snapshot_format: {"HDF5" if fmt == "hdf5" else "BINARYPROTO"} '
             'gamma: 0.5 stepvalue: 1 stepvalue: 2 stepvalue: 4')
    param = ls.solver_param(kind, lr, weight_decay=0.01, momentum=momentum, extra=extra, policy="multistep",
                            iter_size=2)
    for name, value in fields.items():
        setattr(param, name, value)
    return param


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize(("kind", "lr", "momentum"), SOLVERS)
def test_restore_then_continue_is_bit_identical(kind, lr, momentum, fmt, tmp_path) -> None:
    prefix = tmp_path / "snap"
    reference, _ = ls.make_solver(snapshot_param(kind, lr, momentum, prefix, fmt))
    reference.step(6)

    first, _ = ls.make_solver(snapshot_param(kind, lr, momentum, prefix, fmt, snapshot=3))
    first.step(3)
    model, state = (f"{prefix}_iter_3{ext}" for ext in FORMATS[fmt])
    assert os.path.exists(model) and os.path.exists(state)
    assert first.current_step == 2

    resumed, _ = ls.make_solver(snapshot_param(kind, lr, momentum, prefix, fmt, random_seed=99), position=6)
    resumed.restore(state)
    assert (resumed.iter, resumed.current_step) == (3, 2)
    resumed.step(3)
    for ours, theirs in zip(ls.learnable(resumed) + ls.history(resumed),
                            ls.learnable(reference) + ls.history(reference)):
        assert torch.equal(ours, theirs)


def test_snapshot_file_names_and_binary_layout(tmp_path) -> None:
    param = snapshot_param("Adam", 0.01, 0.9, tmp_path / "run", "binary")
    solver, _ = ls.make_solver(param)
    solver.step(2)
    solver.snapshot()
    assert sorted(os.listdir(tmp_path)) == ["run_iter_2.caffemodel", "run_iter_2.solverstate"]
    state = caffe_pb2.SolverState()
    state.ParseFromString((tmp_path / "run_iter_2.solverstate").read_bytes())
    assert (state.iter, state.current_step, state.learned_net) == (2, 1, f"{tmp_path}/run_iter_2.caffemodel")
    assert len(state.history) == 4  # Adam: m then v for the weights and the bias
    for proto, blob in zip(state.history, solver.history):
        assert list(proto.shape.dim) == list(blob.shape) and not proto.diff
        assert np.array_equal(np.array(proto.data, dtype=np.float32), blob.data.numpy().reshape(-1))
    weights = caffe_pb2.NetParameter()
    weights.ParseFromString((tmp_path / "run_iter_2.caffemodel").read_bytes())
    assert [layer.name for layer in weights.layer] == ["data", "innerprod", "loss"]
    assert not weights.layer[1].blobs[0].diff


def test_hdf5_layout_matches_caffes_file(tmp_path) -> None:
    param = snapshot_param("Adam", 0.01, 0.9, tmp_path / "run", "hdf5")
    solver, _ = ls.make_solver(param)
    solver.step(1)
    solver.snapshot()
    ours = h5py.File(tmp_path / "run_iter_1.solverstate.h5", "r")
    caffes = h5py.File(GOLDEN / "solvers" / "snapshot_hdf5" / "snap_iter_4.solverstate.h5", "r")
    with ours, caffes:
        assert sorted(caffes) == ["current_step", "history", "iter", "learned_net"]
        assert sorted(ours) == [*sorted(caffes), "recaffe_resume"]  # recaffe's exact-resume record
        for name in ("iter", "current_step"):
            assert ours[name].dtype == caffes[name].dtype and ours[name].shape == caffes[name].shape == (1,)
        assert ours["iter"][0] == 1
        string_type = ours["learned_net"].id.get_type()
        assert string_type.get_strpad() == caffes["learned_net"].id.get_type().get_strpad()
        assert ours["learned_net"][()] == f"{tmp_path}/run_iter_1.caffemodel.h5".encode()
        assert string_type.get_size() == len(ours["learned_net"][()]) + 1  # null-terminated
        assert sorted(ours["history"], key=int) == [str(i) for i in range(4)]
        assert ours["history/0"].dtype == np.float32 and ours["history/0"].shape == solver.history[0].shape
    with h5py.File(tmp_path / "run_iter_1.caffemodel.h5", "r") as weights:
        assert sorted(weights) == ["data"] and sorted(weights["data"]) == ["data", "innerprod", "loss"]


def test_snapshot_diff_writes_the_diffs(tmp_path) -> None:
    for fmt in FORMATS:
        param = snapshot_param("SGD", 0.01, 0.9, tmp_path / fmt, fmt, snapshot_diff=True)
        solver, _ = ls.make_solver(param)
        solver.step(1)
        solver.snapshot()
    weights = caffe_pb2.NetParameter()
    weights.ParseFromString((tmp_path / "binary_iter_1.caffemodel").read_bytes())
    assert len(weights.layer[1].blobs[0].diff) == ls.DIM
    with h5py.File(tmp_path / "hdf5_iter_1.caffemodel.h5", "r") as f:
        assert f["diff/innerprod/0"].shape == (1, ls.DIM)


@pytest.mark.parametrize(("case", "name", "count"), [("snapshot_binary", "snap_iter_4.solverstate", 4),
                                                     ("snapshot_hdf5", "snap_iter_4.solverstate.h5", 8)])
def test_reads_caffes_solverstate_files(case: str, name: str, count: int) -> None:
    state = snapshot.load(GOLDEN / "solvers" / case / name)
    assert (state.iter, state.current_step) == (4, 1 if case == "snapshot_binary" else 0)
    assert state.learned_net == name.replace("solverstate", "caffemodel")
    assert [h.shape for h in state.history] == [(3, 2, 3, 3), (3,), (5, 27), (5,)] * (count // 4)
    assert all(h.dtype == np.float32 for h in state.history)


def test_restore_checks_the_history_count(tmp_path) -> None:
    param = snapshot_param("SGD", 0.01, 0.9, tmp_path / "sgd", "binary")
    solver, _ = ls.make_solver(param)
    solver.step(1)
    solver.snapshot()
    adam, _ = ls.make_solver(snapshot_param("Adam", 0.01, 0.9, tmp_path / "adam", "binary"))
    with pytest.raises(SolverError, match="Incorrect length of history blobs.*holds 2.*needs 4"):
        adam.restore(tmp_path / "sgd_iter_1.solverstate")
    assert adam.iter == 0


def test_restore_without_learned_net_keeps_the_weights(tmp_path) -> None:
    solver, _ = ls.make_solver(ls.solver_param())
    before = ls.learnable(solver)
    history = [np.full(h.shape, 0.5, dtype=np.float32) for h in solver.history]
    state = snapshot.SolverState(iter=7, current_step=2, history=history)
    snapshot.save(tmp_path / "s.solverstate.h5", state, hdf5=True)
    solver.restore(tmp_path / "s.solverstate.h5")
    assert (solver.iter, solver.current_step) == (7, 2)
    assert all(torch.equal(a, b) for a, b in zip(before, ls.learnable(solver)))
    assert all(torch.equal(h.data, torch.full(h.shape, 0.5)) for h in solver.history)


def test_learned_net_is_found_beside_the_state_file(tmp_path, monkeypatch) -> None:
    """Caffe opens learned_net relative to the working directory; recaffe falls back to the state's folder."""
    monkeypatch.chdir(tmp_path)
    solver, _ = ls.make_solver(snapshot_param("SGD", 0.01, 0.9, pathlib.Path("rel"), "binary"))
    solver.step(2)
    solver.snapshot()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    fresh, _ = ls.make_solver(snapshot_param("SGD", 0.01, 0.9, pathlib.Path("rel"), "binary", random_seed=5))
    fresh.restore(tmp_path / "rel_iter_2.solverstate")
    assert all(torch.equal(a, b) for a, b in zip(ls.learnable(fresh), ls.learnable(solver)))
