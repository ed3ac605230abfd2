"""``caffe train`` end to end on a tiny LMDB: logs, tests, snapshots, resume, finetune, flags."""

from __future__ import annotations

import pathlib
import re
import sys

import numpy as np
import pytest
import torch

from recaffe.io import prototxt
from recaffe.proto import caffe_pb2
from tests.cli import nets


@pytest.fixture
def workdir(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    nets.training_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def weights(path: pathlib.Path | str) -> dict[str, list[np.ndarray]]:
    """Layer name -> its blobs' values, from a .caffemodel."""
    param = prototxt.read_net_weights(path)
    return {layer.name: [np.array(b.data, dtype=np.float32) for b in layer.blobs]
            for layer in param.layer if layer.blobs}


def test_train_logs_tests_and_snapshots(cli, workdir: pathlib.Path) -> None:
    result = cli("train", "-solver=solver.prototxt")
    assert result.status == 0, result.err
    messages = result.messages
    assert "Use CPU." in messages
    for expected in ("Starting Optimization", "Solving lmdb_tiny", "Learning Rate Policy: step"):
        assert expected in messages
    tests = [m for m in messages if ", Testing net (#0)" in m]
    assert tests == ["Iteration 0, Testing net (#0)", "Iteration 4, Testing net (#0)",
                     "Iteration 8, Testing net (#0)"]
    assert sum(m.startswith("    Test net output #0: accuracy = ") for m in messages) == 3
    losses = [m for m in messages if m.startswith("    Test net output #1: loss = ")]
    assert len(losses) == 3 and all(m.endswith(" loss)") for m in losses)
    displays = [m.split(" (")[0] for m in messages if " iter/s, " in m]
    assert displays == [f"Iteration {i}" for i in (0, 2, 4, 6, 8)]
    assert "Iteration 6, lr = 0.025" in messages  # step policy: gamma 0.5 every 6 iterations
    assert messages[-1] == "Optimization Done."
    for it in (5, 10):
        assert (workdir / f"snapshots/tiny_iter_{it}.caffemodel").is_file()
        assert (workdir / f"snapshots/tiny_iter_{it}.solverstate").is_file()


@pytest.mark.parametrize("hdf5", [False, True])
def test_resume_from_snapshot_matches_an_uninterrupted_run(cli, workdir: pathlib.Path, hdf5: bool) -> None:
    fmt = "HDF5" if hdf5 else "BINARYPROTO"
    nets.write_solver(workdir / "solver.prototxt", snapshot_format=fmt)
    assert cli("train", "--solver", "solver.prototxt").status == 0
    nets.write_solver(workdir / "resume.prototxt", snapshot_format=fmt, snapshot_prefix="snapshots/resumed")
    ext = ".h5" if hdf5 else ""
    result = cli("train", "-solver", "resume.prototxt", f"-snapshot=snapshots/tiny_iter_5.solverstate{ext}")
    assert result.status == 0, result.err
    assert f"Resuming from snapshots/tiny_iter_5.solverstate{ext}" in result.messages
    assert not any(m.startswith("Iteration 0") for m in result.messages)
    if hdf5:
        import h5py

        with h5py.File(workdir / "snapshots/tiny_iter_10.caffemodel.h5") as a, \
                h5py.File(workdir / "snapshots/resumed_iter_10.caffemodel.h5") as b:
            for name in ("ip1", "ip2"):
                for i in range(2):
                    key = f"data/{name}/{i}"
                    assert np.array_equal(a[key][()], b[key][()]), key
    else:
        uninterrupted = weights(workdir / "snapshots/tiny_iter_10.caffemodel")
        resumed = weights(workdir / "snapshots/resumed_iter_10.caffemodel")
        assert uninterrupted.keys() == resumed.keys() == {"ip1", "ip2"}
        for name, blobs in uninterrupted.items():
            for a, b in zip(blobs, resumed[name]):
                assert np.array_equal(a, b), name


def test_finetune_copies_the_weights_into_the_nets(cli, workdir: pathlib.Path) -> None:
    assert cli("train", "-solver", "solver.prototxt").status == 0
    source = workdir / "snapshots/tiny_iter_10.caffemodel"
    # max_iter 0: the snapshot after training holds exactly the finetuning starting point
    nets.write_solver(workdir / "finetune.prototxt", max_iter=0, snapshot=0,
                      snapshot_prefix="snapshots/finetuned", random_seed=7)
    result = cli("train", "-solver", "finetune.prototxt", "-weights", str(source))
    assert result.status == 0, result.err
    assert result.messages.count(f"Finetuning from {source}") == 2  # the train and the test net
    start = weights(workdir / "snapshots/finetuned_iter_0.caffemodel")
    for name, blobs in weights(source).items():
        for a, b in zip(blobs, start[name]):
            assert np.array_equal(a, b), name


def test_weights_flag_replaces_the_solvers_weights(cli, workdir: pathlib.Path) -> None:
    nets.write_solver(workdir / "solver.prototxt", weights="missing.caffemodel", max_iter=0, snapshot=0)
    failed = cli("train", "-solver", "solver.prototxt")
    assert failed.status == 1 and "missing.caffemodel" in failed.fatal()
    nets.write_solver(workdir / "other.prototxt", max_iter=0, snapshot=0, snapshot_prefix="snapshots/other")
    assert cli("train", "-solver", "other.prototxt").status == 0
    result = cli("train", "-solver", "solver.prototxt", "-weights", "snapshots/other_iter_0.caffemodel")
    assert result.status == 0, result.err
    assert "Finetuning from snapshots/other_iter_0.caffemodel" in result.messages


def test_level_and_stage_set_the_train_state(cli, workdir: pathlib.Path) -> None:
    nets.write_solver(workdir / "solver.prototxt", max_iter=2, test_interval=100, snapshot=0)
    plain = cli("train", "-solver", "solver.prototxt")
    assert not any("train_accuracy" in m for m in plain.messages)
    staged = cli("train", "-solver", "solver.prototxt", "-stage", "other,monitor", "-level", "3")
    assert staged.status == 0, staged.err
    assert any(m.startswith("    Train net output #1: train_accuracy = ") for m in staged.messages)
    assert any("level: 3" in line for line in staged.err.splitlines())


@pytest.mark.parametrize("spelling", [["-solver=solver.prototxt"], ["--solver=solver.prototxt"],
                                      ["--solver", "solver.prototxt"], ["-solver", "solver.prototxt"]])
def test_flag_spellings(cli, workdir: pathlib.Path, spelling: list[str]) -> None:
    nets.write_solver(workdir / "solver.prototxt", max_iter=1, test_interval=100, snapshot=0)
    result = cli("train", *spelling, "-sighup_effect", "none")
    assert result.status == 0, result.err
    assert "Solving lmdb_tiny" in result.messages


def test_missing_solver_flag(cli, workdir: pathlib.Path) -> None:
    result = cli("train")
    assert result.status == 1 and result.fatal() == "Need a solver definition to train."


def test_missing_solver_file(cli, workdir: pathlib.Path) -> None:
    result = cli("train", "-solver", "nowhere.prototxt")
    assert result.status == 1 and "nowhere.prototxt" in result.fatal()


def test_snapshot_and_weights_are_exclusive(cli, workdir: pathlib.Path) -> None:
    result = cli("train", "-solver", "solver.prototxt", "-snapshot", "a.solverstate", "-weights", "b")
    assert result.status == 1
    assert result.fatal() == "Give a snapshot to resume training or weights to finetune but not both."


def test_bad_signal_effect(cli, workdir: pathlib.Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli("train", "-solver", "solver.prototxt", "-sigint_effect", "explode")
    assert exit_info.value.code == 2


def test_bad_signal_effect_message(capsys, workdir: pathlib.Path) -> None:
    from recaffe.cli import main

    with pytest.raises(SystemExit):
        main.main(["train", "-solver", "solver.prototxt", "-sigint_effect=explode"])
    message = 'invalid signal effect "explode" was specified; use one of snapshot, stop, none'
    assert message in capsys.readouterr().err


def test_gpu_without_cuda_is_an_error(cli, workdir: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("RECAFFE_CPU_FALLBACK", raising=False)
    result = cli("train", "-solver", "solver.prototxt", "-gpu", "0")
    assert result.status == 1
    assert "-gpu 0: no CUDA device is available to PyTorch" in result.fatal()
    assert "RECAFFE_CPU_FALLBACK=1" in result.fatal()
    assert cli("train", "-solver", "solver.prototxt", "-gpu", "all").status == 1


def test_cpu_fallback_when_asked(cli, workdir: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    nets.write_solver(workdir / "solver.prototxt", max_iter=1, test_interval=100, snapshot=0)
    assert cli("train", "-solver", "solver.prototxt", "-gpu", "cpu").status == 0
    monkeypatch.setenv("RECAFFE_CPU_FALLBACK", "1")
    result = cli("train", "-solver", "solver.prototxt", "-gpu", "0")
    assert result.status == 0, result.err
    assert any(line.startswith("W") and "using the CPU" in line for line in result.err.splitlines())
    assert "Use CPU." in result.messages


def test_solver_mode_gpu_without_cuda_runs_on_the_cpu(cli, workdir: pathlib.Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    nets.write_solver(workdir / "solver.prototxt", max_iter=1, test_interval=100, snapshot=0,
                      solver_mode="GPU")
    result = cli("train", "-solver", "solver.prototxt")
    assert result.status == 0, result.err
    assert "The solver asks for solver_mode: GPU but PyTorch sees no CUDA device." in result.messages
    assert "Use CPU." in result.messages


def test_each_rank_takes_its_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from recaffe.cli import common, train

    monkeypatch.setattr(common, "gpu_ids", lambda flag: [0, 1])
    monkeypatch.setattr(common, "use_device", lambda ids: ids)
    monkeypatch.setattr(train.torch.cuda, "get_device_name", lambda i: f"GPU{i}")
    param = caffe_pb2.SolverParameter()
    assert train.select_device("0,1", param, local_rank=1) == [1]
    assert param.device_id == 1
    assert train.rank_count("0,1") == 2
    monkeypatch.setattr(common, "gpu_ids", lambda flag: [int(flag)])
    monkeypatch.setattr(train.torch.cuda, "is_available", lambda: True)
    gpu_mode = caffe_pb2.SolverParameter(solver_mode=caffe_pb2.SolverParameter.GPU)
    assert train.select_device(None, gpu_mode, local_rank=1) == [1]  # torchrun: cuda:LOCAL_RANK
    monkeypatch.setattr(common, "gpu_ids", lambda flag: [0, 1])
    with pytest.raises(common.CliError, match="rank 2 of this machine has no device"):
        train.select_device("0,1", param, local_rank=2)


def test_cpu_fallback_runs_one_rank_per_listed_id(monkeypatch: pytest.MonkeyPatch) -> None:
    from recaffe.cli import common, train

    monkeypatch.setattr(train.torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv(common.CPU_FALLBACK_ENV, "1")
    assert [train.rank_count(flag) for flag in ("0,1,2", "0", "all", "cpu", None)] == [3, 1, 1, 1, 1]


def test_progress_bar_and_log_lines(cli, workdir: pathlib.Path) -> None:
    nets.write_solver(workdir / "solver.prototxt", max_iter=4, test_interval=100, snapshot=0)
    result = cli("train", "-solver", "solver.prototxt", "--progress=on")
    assert result.status == 0, result.err
    assert "4/4" in result.err  # the bar reached the end
    assert "Iteration 2, lr = 0.05" in result.messages  # log lines stay whole lines


def test_tensorboard_scalars(cli, workdir: pathlib.Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = cli("train", "-solver", "solver.prototxt", "--tensorboard", "tb")
    assert result.status == 0, result.err
    events = EventAccumulator(str(workdir / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/smoothed_loss", "test/accuracy", "test/loss"} <= tags
    assert [e.step for e in events.Scalars("test/accuracy")] == [0, 4, 8]
    assert [e.step for e in events.Scalars("train/lr")] == [0, 2, 4, 6, 8]
    assert events.Scalars("train/lr")[-1].value == pytest.approx(0.025)


def test_missing_tensorboard_names_the_extra(cli, workdir: pathlib.Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    result = cli("train", "-solver", "solver.prototxt", "--tensorboard", "tb")
    assert result.status == 1
    assert result.fatal() == "--tensorboard needs the tensorboard package: pip install recaffe[tensorboard]"


def test_the_progress_bar_shows_the_logged_smoothed_loss(cli, workdir: pathlib.Path) -> None:
    nets.write_solver(workdir / "solver.prototxt", max_iter=3, display=1, average_loss=2, test_interval=100,
                      snapshot=0)
    result = cli("train", "-solver", "solver.prototxt", "--progress=on")
    assert result.status == 0, result.err
    logged = [m.rsplit("loss = ", 1)[1] for m in result.messages if re.match(r"Iteration 2 \(.*loss = ", m)]
    assert len(logged) == 1
    assert f"loss={logged[0]}]" in result.err.split("\r")[-1]  # the bar after the last iteration


def test_weights_given_a_text_prototxt_says_so(cli, workdir: pathlib.Path) -> None:
    result = cli("train", "-solver", "solver.prototxt", "-weights", "net.prototxt")
    assert result.status == 1
    assert "'net.prototxt' is not a binary NetParameter" in result.fatal()
    assert "This is a text prototxt, not a caffemodel" in result.fatal()


def test_a_bad_launcher_environment_is_a_fatal_line(cli, workdir: pathlib.Path, monkeypatch) -> None:
    nets.write_solver(workdir / "solver.prototxt", max_iter=1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("MASTER_PORT", "29500")
    result = cli("train", "-solver", "solver.prototxt")
    assert result.status == 1
    assert result.fatal() == "RANK=2 is outside WORLD_SIZE=2"
