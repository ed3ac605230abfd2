"""pycaffe's solvers over recaffe's: construction, nets, param, lr, step/solve, callbacks,
apply_update, snapshot/restore, share_weights."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

import caffe
from tests.pycaffe.conftest import TINY_NET

X = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
LABELS = np.array([0, 4, 2, 1], dtype=np.float32)


@pytest.fixture
def solver_file(write_net, tmp_path):
    net = write_net(TINY_NET)

    def write(extra: str = "", solver_type: str = "SGD") -> str:
        path = tmp_path / f"solver_{solver_type}.prototxt"
        path.write_text(f'net: "{net}" type: "{solver_type}" base_lr: 0.1 lr_policy: "fixed" '
                        f'max_iter: 6 display: 0 test_iter: 1 test_interval: 1000 '
                        f'snapshot_after_train: false snapshot_prefix: "{tmp_path / "model"}" {extra}')
        return str(path)

    return write


def fed(solver: caffe.SGDSolver) -> caffe.SGDSolver:
    for net in [solver.net, *solver.test_nets]:
        net.blobs["data"].data[...] = X
        net.blobs["label"].data[...] = LABELS
    return solver


def test_nets_are_stable_caffe_nets(solver_file) -> None:
    solver = caffe.SGDSolver(solver_file())
    assert isinstance(solver.net, caffe.Net) and solver.net is solver.net
    assert len(solver.test_nets) == 1 and solver.test_nets[0] is solver.test_nets[0]
    assert solver.net._net is solver._solver.net
    assert solver.iter == 0


def test_get_solver_dispatches_on_type(solver_file) -> None:
    assert type(caffe.get_solver(solver_file())) is caffe.SGDSolver
    adam = caffe.get_solver(solver_file("momentum: 0.9 momentum2: 0.999", "Adam"))
    assert type(adam) is caffe.AdamSolver and adam.param.type == "Adam"
    assert isinstance(caffe.NesterovSolver(solver_file("momentum: 0.9", "Nesterov")), caffe.SGDSolver)
    with pytest.raises(RuntimeError, match="Could not open file"):
        caffe.get_solver("no_such_solver.prototxt")


def test_param_view_and_learning_rate(solver_file) -> None:
    solver = caffe.SGDSolver(solver_file('momentum: 0.5'))
    assert (solver.param.max_iter, solver.param.display, solver.param.layer_wise_reduce) == (6, 0, True)
    assert solver.param.base_lr == pytest.approx(0.1)
    assert solver.lr == pytest.approx(0.1)
    solver.param.base_lr = 0.5
    assert solver.lr == pytest.approx(0.5)
    with pytest.raises(AttributeError, match="read-only"):
        solver.param.max_iter = 3


def test_apply_update_uses_the_learning_rate(solver_file) -> None:
    solver = caffe.SGDSolver(solver_file())
    weights = solver.net.layers[2].blobs[0]
    data = weights.data[...]
    data[...] = 0
    weights.diff[...] = 1
    solver.apply_update()
    np.testing.assert_allclose(data, -0.1, rtol=1e-6)
    solver.param.base_lr = 0.25
    weights.diff[...] = 1
    solver.apply_update()
    np.testing.assert_allclose(data, -0.35, rtol=1e-6)
    assert solver.iter == 2


def test_step_solve_and_callbacks(solver_file) -> None:
    solver = fed(caffe.SGDSolver(solver_file()))
    events: list[str] = []
    solver.add_callback(lambda: events.append("start"), lambda: events.append("ready"))
    solver.add_callback(caffe.NCCL(solver, caffe.NCCL.new_uid()))
    before = solver.net.params["ip_a"][0].data.copy()
    first = solver.net.forward()["loss"].copy()
    solver.step(2)
    assert solver.iter == 2
    assert events == ["start", "ready"] * 2
    assert not np.array_equal(before, solver.net.params["ip_a"][0].data)
    solver.solve()
    assert solver.iter == 6
    assert solver.net.forward()["loss"] < first


def test_callbacks_may_feed_data(solver_file) -> None:
    solver = caffe.SGDSolver(solver_file())
    seen: list[float] = []

    def feed() -> None:
        solver.net.blobs["data"].data[...] = X
        solver.net.blobs["label"].data[...] = LABELS

    solver.add_callback(feed, lambda: seen.append(float(np.abs(solver.net.params["ip_a"][0].diff).sum())))
    solver.step(1)
    assert seen[0] > 0


def test_snapshot_and_restore(solver_file, tmp_path) -> None:
    solver = fed(caffe.SGDSolver(solver_file("momentum: 0.9")))
    solver.step(3)
    solver.snapshot()
    weights, state = tmp_path / "model_iter_3.caffemodel", tmp_path / "model_iter_3.solverstate"
    assert weights.is_file() and state.is_file()
    solver.step(2)
    resumed = fed(caffe.SGDSolver(solver_file("momentum: 0.9")))
    resumed.restore(str(state))
    assert resumed.iter == 3
    resumed.step(2)
    for name, blobs in solver.net.params.items():
        for mine, theirs in zip(blobs, resumed.net.params[name]):
            np.testing.assert_allclose(mine.data, theirs.data, rtol=1e-6)


def test_share_weights_and_nets_outlive_the_solver(solver_file, write_net) -> None:
    solver = fed(caffe.SGDSolver(solver_file()))
    deploy = caffe.Net(write_net(TINY_NET), caffe.TEST)
    solver.share_weights(deploy)
    solver.step(1)
    np.testing.assert_array_equal(deploy.params["ip_a"][0].data, solver.net.params["ip_a"][0].data)
    nets = [solver.net, *solver.test_nets]
    del solver
    for net in nets:
        assert all(np.isfinite(p.data).all() for blobs in net.params.values() for p in blobs)
        assert all(np.isfinite(b.data).all() for b in net.blobs.values())


def test_snapshot_in_the_working_directory(solver_file, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "relative.prototxt"
    text = pathlib.Path(solver_file()).read_text()
    path.write_text(text.replace(str(tmp_path / "model"), "model"))
    caffe.SGDSolver(str(path)).snapshot()
    assert sorted(f for f in os.listdir(tmp_path) if f.startswith("model_iter_0")) == [
        "model_iter_0.caffemodel", "model_iter_0.solverstate"]
