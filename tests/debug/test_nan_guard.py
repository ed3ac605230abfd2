"""The NaN guard: ``caffe train`` stops at the first non-finite value naming the layer that made it,
writes no snapshot with non-finite weights; pycaffe raises after ``caffe.set_nan_check(True)``."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest
import torch

import caffe
import recaffe
from recaffe.debug import nan_guard
from recaffe.io import prototxt
from tests.debug import nets

FATAL = re.compile(r"Non-finite value at iteration (\d+), (\w+) phase: layer '([^']+)'")


@pytest.fixture
def workdir(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    return tmp_path


def bad(t: torch.Tensor) -> bool:
    return not bool(torch.isfinite(t).all())


def first_nonfinite(solver_file: pathlib.Path, iterations: int) -> tuple[int, dict[int, tuple[str, str]]]:
    """An independent oracle, run with the guard off: per iteration, the first (phase, layer) that
    made a non-finite value (forward tops, then backward diffs, then the updated weights)."""
    solver = recaffe.load_solver(str(solver_file))
    net = solver.net
    found: dict[int, tuple[str, str]] = {}

    def after_forward(i: int) -> None:
        if any(bad(b.data) for b in net.top_vecs[i]):
            found.setdefault(solver.iter, ("forward", net.layer_names[i]))

    def after_backward(i: int) -> None:
        diffs = [b.diff for k, b in enumerate(net.bottom_vecs[i]) if net.bottom_need_backward[i][k]]
        if any(bad(d) for d in diffs + [b.diff for b in net.layers[i].blobs]):
            found.setdefault(solver.iter, ("backward", net.layer_names[i]))

    net.after_forward.append(after_forward)
    net.after_backward.append(after_backward)
    for it in range(iterations):
        solver.step(1)
        if any(bad(b.data) for b in net.params):
            found.setdefault(it, ("update", "?"))
    return min(found, default=-1), found


def snapshot_weights_finite(folder: pathlib.Path) -> list[str]:
    models = sorted(folder.glob("*.caffemodel"))
    for model in models:
        for layer in prototxt.read_net_weights(model).layer:
            for blob in layer.blobs:
                assert np.isfinite(np.array(blob.data)).all(), model
    return [m.name for m in models]


def test_base_lr_1000_stops_at_the_first_nan_naming_its_layer(cli, workdir: pathlib.Path) -> None:
    solver = nets.tiny_dir(workdir, base_lr=1000, max_iter=40, snapshot=3)
    result = cli("train", "-solver", solver)
    assert result.status != 0
    match = FATAL.search(result.fatal())
    assert match, result.fatal()
    iteration, phase, layer = int(match.group(1)), match.group(2), match.group(3)
    first, oracle = first_nonfinite(solver, iteration + 1)
    assert 0 <= first <= iteration <= first + 5
    assert (phase, layer) == oracle[iteration]
    assert "inputs: bottom" in result.fatal() and "last good snapshot: snapshots/tiny_iter_" in result.fatal()
    written = snapshot_weights_finite(workdir / "snapshots")
    assert written and all(int(re.search(r"_iter_(\d+)", n).group(1)) <= iteration for n in written)


@pytest.mark.parametrize(("where", "layer"), [("forward", "inject"), ("backward", "inject")])
def test_a_python_layer_injecting_nan_is_named(cli, workdir: pathlib.Path, where: str, layer: str) -> None:
    solver = nets.tiny_dir(workdir, python=f"InjectNaN:{where}:3", base_lr=0.01, snapshot=2)
    result = cli("train", "-solver", solver)
    assert result.status == 1
    fatal = result.fatal()
    assert FATAL.search(fatal).groups() == ("3", where, layer), fatal
    assert "(Python)" in fatal and "last good snapshot: snapshots/tiny_iter_2.solverstate" in fatal
    if where == "forward":
        assert "top 'ip1p' data" in fatal and "bottom 'ip1' data [" in fatal
    else:
        assert "bottom 'ip1' diff" in fatal and "top 'ip1p' diff [" in fatal
    assert snapshot_weights_finite(workdir / "snapshots") == ["tiny_iter_2.caffemodel"]


def test_iter_size_passes_are_re_run_in_order(cli, workdir: pathlib.Path) -> None:
    # forward call 5 is the second pass of iteration 2
    solver = nets.tiny_dir(workdir, python="InjectNaN:forward:5", base_lr=0.01, iter_size=2)
    fatal = cli("train", "-solver", solver).fatal()
    assert FATAL.search(fatal).groups() == ("2", "forward", "inject"), fatal


def test_nan_check_off_runs_on_as_caffe_does(cli, workdir: pathlib.Path) -> None:
    solver = nets.tiny_dir(workdir, python="InjectNaN:forward:3", base_lr=0.01)
    result = cli("train", "-solver", solver, "-nan_check", "off")
    assert result.status == 0
    assert "Iteration 8, loss = nan" in result.messages and "Optimization Done." in result.messages
    assert not nan_guard.is_enabled()  # the command restores the process-wide setting


def test_an_update_that_overflows_is_named_in_the_update_phase(cli, workdir: pathlib.Path) -> None:
    solver = nets.tiny_dir(workdir, base_lr=1e30, lr_mult=1e10, momentum=0)  # ip1's rate overflows
    result = cli("train", "-solver", solver)
    fatal = result.fatal()
    assert FATAL.search(fatal).groups() == ("0", "update", "ip1"), fatal
    assert "update of ip1[0]" in fatal and "gradient [" in fatal and "local rate inf" in fatal


def test_pycaffe_step_and_forward_raise_with_the_facts(workdir: pathlib.Path) -> None:
    solver_file = nets.tiny_dir(workdir, python="InjectNaN:forward:2", base_lr=0.01)
    solver = caffe.get_solver(str(solver_file))
    caffe.set_nan_check(True)
    try:
        solver.step(2)
        with pytest.raises(FloatingPointError) as raised:
            solver.step(1)
        error = raised.value
        assert isinstance(error, caffe.NonFiniteError)
        facts = (error.iteration, error.phase, error.layer, error.blob)
        assert facts == (2, "forward", "inject", "top 'ip1p' data")
        assert solver.iter == 2  # the bad iteration's update was not applied
        # the re-run made the Python layer's forward call number 2 (its counter had been put back)
        net = solver.net
        net.layer_dict["inject"].at = 4
        net.forward()
        with pytest.raises(caffe.NonFiniteError) as raised:
            net.forward()
        assert raised.value.layer == "inject" and raised.value.iteration is None
        for blob in net.params["ip1"]:
            blob.data[...] = np.nan
        with pytest.raises(caffe.NonFiniteError, match=r"weights ip1\[0\]"):
            solver.snapshot()
        assert not list((workdir / "snapshots").iterdir())
    finally:
        caffe.set_nan_check(False)
    net.forward()  # off: Caffe's behaviour, no check


def test_the_guard_does_not_change_training(workdir: pathlib.Path) -> None:
    solver_file = nets.lenet_dir(workdir)  # Dropout: the guard must leave Caffe's random stream alone
    weights = []
    for enabled in (False, True):
        with nan_guard.enabled_as(enabled):
            solver = recaffe.load_solver(str(solver_file))
            solver.step(3)
        weights.append([b.data.clone() for b in solver.net.params])
    assert all(torch.equal(a, b) for a, b in zip(*weights))
