"""``caffe repro``: LeNet with Dropout is bit-identical run twice and across thread counts; a Python
layer drawing from numpy's unseeded generator is named; ``-against`` snapshots and BVLC logs."""

from __future__ import annotations

import pathlib
import re

import pytest

from recaffe.debug import manual_sgd, repro
from recaffe.io import prototxt
from tests.conftest import TESTS
from tests.debug import nets


@pytest.fixture
def workdir(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_lenet_with_dropout_is_bit_identical_twice_and_across_threads(cli, workdir: pathlib.Path) -> None:
    solver = nets.lenet_dir(workdir)
    result = cli("repro", "-solver", solver, "-iterations", 3, "-settings", "run-twice,threads,manual,cuda")
    assert result.status == 0, result.out + result.err
    lines = result.out.splitlines()
    assert "run-twice: bit-identical over 3 iterations" in lines
    assert "threads: bit-identical over 3 iterations" in lines
    assert "manual: bit-identical over 3 iterations" in lines
    assert any(line.startswith("cuda: ") for line in lines)


def test_an_unseeded_numpy_python_layer_is_named(cli, workdir: pathlib.Path) -> None:
    solver = nets.tiny_dir(workdir, python="UnseededNoise:")
    result = cli("repro", "-solver", solver, "-iterations", 2)
    assert result.status == 1
    (line,) = result.out.splitlines()
    assert line.startswith("run-twice: differ at iteration 0, forward phase: layer 'inject' (Python), "
                           "top 'ip1p' data: max |a-b| = "), line


def test_an_unseeded_solver_differs_in_its_initial_weights(workdir: pathlib.Path) -> None:
    param = prototxt.read_solver_param(nets.tiny_dir(workdir, random_seed=-1))
    outcome = repro.run_setting(param, repro.SETTINGS.get("run-twice"), 2)
    expected = "run-twice: differ at the initial weights: layer 'ip1' (InnerProduct)"
    assert outcome.message().startswith(expected)
    assert "no random_seed" in outcome.notes[0]


def test_the_manual_loop_setting_with_iter_size_and_other_solvers(workdir: pathlib.Path) -> None:
    param = prototxt.read_solver_param(nets.tiny_dir(workdir, iter_size=2, weight_decay=0.01))
    manual = repro.SETTINGS.get("manual")
    assert repro.run_setting(param, manual, 3).difference is None
    param.type = "Adam"
    assert "the documented manual loop is SGD's" in repro.run_setting(param, manual, 1).skipped


def test_against_snapshots(cli, workdir: pathlib.Path) -> None:
    solver = nets.tiny_dir(workdir, max_iter=3, snapshot=1)
    assert cli("train", "-solver", solver).status == 0
    same = cli("repro", "-solver", solver, "-iterations", 3, "-against", "snapshots")
    assert same.status == 0 and same.out.strip() == "against: matches snapshots at iterations 1, 2, 3"
    nets.tiny_dir(workdir, max_iter=3, lr_mult=2)
    other = cli("repro", "-solver", solver, "-iterations", 3, "-against", "snapshots/tiny")
    assert other.status == 1
    assert other.out.startswith("against: differs from snapshots/tiny at iteration 1: ip1[0] max |a-b| = ")


def test_against_a_bvlc_log(cli, workdir: pathlib.Path) -> None:
    solver = nets.tiny_dir(workdir, max_iter=4, display=1)
    train = cli("train", "-solver", solver)
    log = workdir / "caffe.log"
    log.write_text(train.err)
    same = cli("repro", "-solver", solver, "-iterations", 4, "-against", "caffe.log")
    assert same.status == 0
    assert same.out.startswith("against: matches caffe.log: 4 display/test rows"), same.out
    # a log whose loss at iteration 2 is off in the third digit
    text = re.sub(r"(Iteration 2 \(.*?\), loss = )(\S+)", lambda m: m.group(1) + "9.99", train.err)
    text = re.sub(r"(Train net output #0: loss = )(\S+)(?=.*\n.*Iteration 2, lr)",
                  lambda m: m.group(1) + "9.99", text)
    log.write_text(text)
    other = cli("repro", "-solver", solver, "-iterations", 4, "-against", "caffe.log")
    assert other.status == 1
    assert "differs from caffe.log at iteration 2: train loss = " in other.out, other.out


def test_the_manual_loop_module_is_the_documented_block() -> None:
    doc = (TESTS.parent / "docs" / "manual_sgd_loop.md").read_text()
    block = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    source = pathlib.Path(manual_sgd.__file__).read_text()
    assert source.endswith(block)


def test_the_deploy_setting_compares_the_test_nets_outputs(workdir: pathlib.Path) -> None:
    param = prototxt.read_solver_param(nets.lenet_dir(workdir, test_iter=1, test_interval=100))
    deploy = repro.SETTINGS.get("deploy")
    # deploy mode folds and fuses: equal within a tolerance, and the outputs are compared every iteration
    assert repro.run_setting(param, deploy, 2, rtol=1e-5, atol=1e-6).difference is None
    run = repro.Run(repro.training_only(param), deploy.variants[1], param)
    assert run.inference is not None and run.inference.deploy is not None
    outputs = [(r.phase, r.blob) for r in run.iteration() if r.phase == "inference"]
    assert outputs == [("inference", "test net output 'loss'")]
    assert repro.run_setting(repro.training_only(param), deploy, 1).skipped == repro.NO_TEST_NET
