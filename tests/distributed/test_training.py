"""Data-parallel LeNet on the digits, 2 CPU ranks (gloo on 127.0.0.1), against one process.

Every launch (``train -gpu 0,1`` with the CPU fallback, torchrun, pycaffe's ``python/train.py``
pattern) must give the weights of one process with ``iter_size: 2`` (up to float summation
order), with one log line per display iteration; a rank that dies or hangs must stop the other
within the timeout, naming it; SIGINT to rank 0 must stop both ranks at the same iteration.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from recaffe import solver as solvers
from recaffe.distributed.rendezvous import free_port
from recaffe.proto import caffe_pb2
from recaffe.tools.datasets import convert_digits

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
TIMEOUT = 4  # RECAFFE_DIST_TIMEOUT of the runs, seconds
SOLVER = """net: "net.prototxt"
test_iter: 1
test_interval: 10
base_lr: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: "step"
gamma: 0.5
stepsize: 8
display: 5
max_iter: {max_iter}
snapshot: {snapshot}
snapshot_prefix: "snapshots/lenet"
random_seed: 1701
solver_mode: CPU
"""


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("digits")
    convert_digits(str(out), train_size=1000)
    return out


def run_dir(root: pathlib.Path, digits: pathlib.Path, max_iter: int = 20, snapshot: int = 20,
            **extra: object) -> pathlib.Path:
    """``root`` with LeNet (train batch 16, test batch 20) on the digits and its solver."""
    net = (ROOT / "examples" / "digits" / "lenet_train_test.prototxt").read_text()
    for name in ("train", "test"):
        net = net.replace(f"examples/digits/digits_{name}_lmdb", str(digits / f"digits_{name}_lmdb"))
    net = net.replace("batch_size: 64", "batch_size: 16").replace("batch_size: 99", "batch_size: 20")
    (root / "net.prototxt").write_text(net)
    (root / "snapshots").mkdir()
    text = SOLVER.format(max_iter=max_iter, snapshot=snapshot)
    (root / "solver.prototxt").write_text(text + "".join(f"{k}: {v}\n" for k, v in extra.items()))
    return root


def weights(path: pathlib.Path) -> dict[str, np.ndarray]:
    net = caffe_pb2.NetParameter()
    net.ParseFromString(path.read_bytes())
    return {f"{layer.name}/{i}": np.array(b.data, dtype=np.float32)
            for layer in net.layer for i, b in enumerate(layer.blobs)}


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory, digits: pathlib.Path) -> pathlib.Path:
    """One process, ``iter_size: 2``: the same 32 digits per step as 2 ranks of 16; its folder."""
    root = run_dir(tmp_path_factory.mktemp("reference"), digits, iter_size=2)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        solvers.load_solver("solver.prototxt").solve()
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture(scope="module")
def reference(reference_run: pathlib.Path) -> dict[str, np.ndarray]:
    return weights(reference_run / "snapshots" / "lenet_iter_20.caffemodel")


def assert_same_weights(path: pathlib.Path, reference: dict[str, np.ndarray]) -> None:
    got = weights(path)
    assert got.keys() == reference.keys()
    for name, want in reference.items():
        # the ranks sum their halves of the 32 digits in another order than one process does
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-5 * np.abs(want).max(), err_msg=name)


def environment(**extra: object) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RECAFFE_CPU_FALLBACK": "1",
           "RECAFFE_DIST_TIMEOUT": str(TIMEOUT), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(argv: list[str], cwd: pathlib.Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=environment(), capture_output=True, text=True, timeout=timeout)


def iteration_of(snapshot: pathlib.Path) -> int:
    return int(snapshot.stem.split("_")[-1])


def display_iterations(log: str) -> list[int]:
    return [int(m) for m in re.findall(r"\] Iteration (\d+) \([^)]*iter/s", log)]


def test_gpu_flag_on_cpu_trains_like_iter_size_2(tmp_path, digits, reference) -> None:
    root = run_dir(tmp_path, digits)
    done = run([str(BIN / "recaffe"), "train", "-solver", "solver.prototxt", "-gpu", "0,1"], root)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_weights(root / "snapshots" / "lenet_iter_20.caffemodel", reference)
    assert display_iterations(done.stderr) == [0, 5, 10, 15]  # rank 0 alone logs them
    assert len(re.findall(r"\] Iteration 20, loss = ", done.stderr)) == 1
    assert len(re.findall(r"Testing net \(#0\)", done.stderr)) == 3  # iterations 0, 10, 20 on rank 0
    assert "Joining a run of 2 solvers as rank 0" in done.stderr
    assert "as rank 1" not in done.stderr  # other ranks log warnings only


def test_torchrun_trains_like_iter_size_2(tmp_path, digits, reference) -> None:
    root = run_dir(tmp_path, digits)
    done = run([str(BIN / "torchrun"), "--nproc_per_node=2", f"--master_port={free_port()}", "--no-python",
                "recaffe", "train", "-solver", "solver.prototxt"], root)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_weights(root / "snapshots" / "lenet_iter_20.caffemodel", reference)
    assert display_iterations(done.stderr) == [0, 5, 10, 15]


def test_pycaffe_train_py_pattern_trains_like_iter_size_2(tmp_path, digits, reference) -> None:
    root = run_dir(tmp_path, digits)
    script = ROOT / "examples" / "pycaffe" / "train.py"
    done = run([sys.executable, str(script), "--solver", "solver.prototxt", "--gpus", "0", "1"], root)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_weights(root / "snapshots" / "lenet_iter_20.caffemodel", reference)
    assert display_iterations(done.stderr) == [0, 5, 10, 15]


# ------------------------------------------------------------------ faults and signals
def start_ranks(root: pathlib.Path, *flags: str, **env_extra: object) -> list[subprocess.Popen[str]]:
    """Two ``recaffe train`` ranks launched by hand with torchrun's variables; logs in rank<N>.log."""
    port = free_port()
    ranks = []
    argv = [str(BIN / "recaffe"), "train", "-solver", "solver.prototxt", *flags]
    for rank in range(2):
        env = environment(RANK=rank, LOCAL_RANK=rank, WORLD_SIZE=2, MASTER_ADDR="127.0.0.1", MASTER_PORT=port,
                          **env_extra)
        with open(root / f"rank{rank}.log", "w") as log:
            ranks.append(subprocess.Popen(argv, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                          text=True))
    return ranks


def wait_for_iteration(root: pathlib.Path, ranks: list[subprocess.Popen[str]], iteration: int) -> None:
    """Until rank 0 has logged the display line of ``iteration`` (both still running)."""
    deadline = time.monotonic() + 120
    while not any(i >= iteration for i in display_iterations((root / "rank0.log").read_text())):
        assert all(r.poll() is None for r in ranks), (root / "rank0.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.2)


def stopped_within(rank: subprocess.Popen[str], seconds: float) -> float:
    started = time.monotonic()
    try:
        rank.wait(timeout=seconds)
    finally:
        if rank.poll() is None:
            rank.kill()
            rank.wait()
    return time.monotonic() - started


@pytest.mark.parametrize("how", ["kill -9", "hang"])
def test_a_dead_rank_stops_the_other_naming_it(tmp_path, digits, how) -> None:
    root = run_dir(tmp_path, digits, max_iter=100000, snapshot=5)
    ranks = start_ranks(root)
    try:
        wait_for_iteration(root, ranks, 10)
        if how == "kill -9":
            ranks[1].kill()
            ranks[1].wait()  # reaped, as a launcher would
        else:
            ranks[1].send_signal(signal.SIGSTOP)  # alive but silent: only the heartbeat tells
        stopped_within(ranks[0], TIMEOUT + 30)  # margin for a loaded machine; the test takes ~TIMEOUT
    finally:
        for rank in ranks:
            if rank.poll() is None:
                rank.kill()
                rank.wait()
    log = (root / "rank0.log").read_text()
    assert ranks[0].returncode == 1, log[-3000:]
    fatal = [line for line in log.splitlines() if line.startswith("F")]
    assert len(fatal) == 1, log[-3000:]
    want = "its process" if how == "kill -9" else f"no heartbeat for {TIMEOUT} s"
    assert re.search(rf"\] rank 1 is gone \({want}.*\); rank 0 stops$", fatal[0]), fatal[0]
    snapshots = sorted(root.glob("snapshots/lenet_iter_*.caffemodel"), key=iteration_of)
    assert snapshots and weights(snapshots[-1])  # the last good snapshot is readable


BOOM = """import caffe


class Boom(caffe.Layer):
    \"\"\"Fails in the forward pass of iteration 8 on rank 1.\"\"\"

    def setup(self, bottom, top):
        self.calls = 0

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        self.calls += 1
        if caffe.solver_rank() == 1 and self.calls == 8:
            raise ValueError("boom on rank 1")

    def backward(self, top, propagate_down, bottom):
        pass
"""


def test_an_error_on_one_rank_stops_the_other_naming_it(tmp_path, digits) -> None:
    root = run_dir(tmp_path, digits, max_iter=1000, snapshot=0)
    (root / "boom.py").write_text(BOOM)
    with open(root / "net.prototxt", "a") as net:
        net.write('layer { name: "boom" type: "Python" bottom: "label" include { phase: TRAIN } '
                  'python_param { module: "boom" layer: "Boom" } }\n')
    ranks = start_ranks(root, PYTHONPATH=f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    for rank in ranks:
        stopped_within(rank, TIMEOUT + 60)
    logs = [(root / f"rank{r}.log").read_text() for r in range(2)]
    assert [r.returncode for r in ranks] == [1, 1], logs[0][-2000:] + logs[1][-2000:]
    assert "boom on rank 1" in [line for line in logs[1].splitlines() if line.startswith("F")][-1]
    fatal = [line for line in logs[0].splitlines() if line.startswith("F")]
    assert len(fatal) == 1, fatal
    assert re.search(r"\] rank 1 failed: .*boom on rank 1.*; rank 0 stops too$", fatal[0]), fatal


def snapshots_written(root: pathlib.Path) -> list[int]:
    return sorted(iteration_of(p) for p in root.glob("snapshots/lenet_iter_*.caffemodel"))


def test_signals_to_rank_0_act_on_every_rank_at_the_same_iteration(tmp_path, digits) -> None:
    root = run_dir(tmp_path, digits, max_iter=100000, snapshot=0)
    ranks = start_ranks(root, "-v")
    try:
        wait_for_iteration(root, ranks, 5)
        ranks[1].send_signal(signal.SIGINT)  # ignored: rank 0 decides for all
        ranks[0].send_signal(signal.SIGHUP)  # snapshot and carry on
        deadline = time.monotonic() + 60
        while not snapshots_written(root) and time.monotonic() < deadline:
            time.sleep(0.1)
        hup = snapshots_written(root)
        assert len(hup) == 1, (root / "rank0.log").read_text()[-3000:]
        wait_for_iteration(root, ranks, hup[0] + 5)  # both ranks still training
        ranks[0].send_signal(signal.SIGINT)  # stop (after a snapshot)
        for rank in ranks:
            stopped_within(rank, 60)
    finally:
        for rank in ranks:
            if rank.poll() is None:
                rank.kill()
                rank.wait()
    logs = [(root / f"rank{r}.log").read_text() for r in range(2)]
    # had rank 1 stopped at another iteration than rank 0, the one left would wait in an
    # all-reduce for a rank that is gone, and fail
    assert [r.returncode for r in ranks] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    assert all("Optimization stopped early." in log for log in logs)
    written = snapshots_written(root)
    assert len(written) == 2 and hup[0] + 5 <= written[1] < 100000  # the SIGHUP's and the last
    assert not re.search(r"Snapshotting", logs[1])  # rank 1 (-v: it logs) writes no snapshot


def test_ranks_resume_from_a_snapshot(tmp_path, digits, reference_run) -> None:
    root = run_dir(tmp_path, digits, max_iter=25, snapshot=25)
    for name in ("lenet_iter_20.solverstate", "lenet_iter_20.caffemodel"):
        shutil.copy(reference_run / "snapshots" / name, root / "snapshots")
    ranks = start_ranks(root, "-snapshot", "snapshots/lenet_iter_20.solverstate")
    for rank in ranks:
        stopped_within(rank, 120)
    log = (root / "rank0.log").read_text()
    assert [r.returncode for r in ranks] == [0, 0], log[-3000:]
    # every rank restored iteration 20 (else they would not meet in the same all-reduces)
    assert display_iterations(log) == [20]
    assert "Iteration 20, lr = 0.0025" in log  # step policy: 0.01 * 0.5^(20 // 8)
    assert (root / "snapshots" / "lenet_iter_25.caffemodel").exists()


def test_ranks_finetune_from_weights(tmp_path, digits, reference_run) -> None:
    """``-weights``: the 2 ranks start from the caffemodel, as one ``iter_size: 2`` process does (had
    the ranks ignored it, they would start from the fillers and end elsewhere)."""
    pretrained = str(reference_run / "snapshots" / "lenet_iter_20.caffemodel")
    single, ranks = tmp_path / "single", tmp_path / "ranks"
    single.mkdir()
    ranks.mkdir()
    run_dir(single, digits, max_iter=5, snapshot=5, iter_size=2)
    run_dir(ranks, digits, max_iter=5, snapshot=5)
    one = run([str(BIN / "recaffe"), "train", "-solver", "solver.prototxt", "-weights", pretrained], single)
    assert one.returncode == 0, one.stderr[-3000:]
    two = run([str(BIN / "recaffe"), "train", "-solver", "solver.prototxt", "-gpu", "0,1",
               "-weights", pretrained], ranks)
    assert two.returncode == 0, two.stderr[-3000:]
    assert_same_weights(ranks / "snapshots" / "lenet_iter_5.caffemodel",
                        weights(single / "snapshots" / "lenet_iter_5.caffemodel"))
