"""SIGINT/SIGHUP during ``caffe train``: the handler's flags, and real signals to a real process."""

from __future__ import annotations

import os
import pathlib
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from recaffe.cli import signals
from tests.cli import nets

REPO = pathlib.Path(__file__).resolve().parents[2]
needs_sighup = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")


@needs_sighup
def test_handler_maps_signals_to_actions() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGHUP)
    with signals.SignalHandler(sigint_effect="stop", sighup_effect="snapshot") as handler:
        assert handler.check() == "none"
        os.kill(os.getpid(), signal.SIGINT)
        assert handler.check() == "stop"
        assert handler.check() == "none"  # each signal is reported once
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGHUP)
        assert handler.check() == "snapshot"  # SIGHUP is looked at first
        assert handler.check() == "stop"
        assert handler.check() == "none"
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGHUP)) == before


@needs_sighup
def test_effects_are_configurable() -> None:
    with signals.SignalHandler(sigint_effect="none", sighup_effect="stop") as handler:
        os.kill(os.getpid(), signal.SIGINT)
        assert handler.check() == "none"
        os.kill(os.getpid(), signal.SIGHUP)
        assert handler.check() == "stop"


def test_bad_effect_is_refused() -> None:
    with pytest.raises(Exception, match='invalid signal effect "later"'):
        signals.SignalHandler(sigint_effect="later")


class Process:
    """A subprocess whose stderr lines are collected by a thread, to wait on with a deadline."""

    def __init__(self, argv: list[str], cwd: pathlib.Path) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if text in line:
                return line
        self.proc.kill()
        raise AssertionError(f"{text!r} did not appear; the log was:\n" + "\n".join(self.lines[-40:]))

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stderr.close()

    def finish(self, timeout: float = 60.0) -> int:
        status = self.proc.wait(timeout=timeout)
        while (line := self._queue.get(timeout=timeout)) is not None:
            self.lines.append(line)
        return status


@needs_sighup
@pytest.mark.slow
def test_sighup_snapshots_and_sigint_stops_a_real_training(tmp_path: pathlib.Path) -> None:
    nets.training_dir(tmp_path, max_iter=1_000_000, display=1, snapshot=0, test_interval=1_000_000,
                      test_initialization=False)
    argv = [sys.executable, "-m", "recaffe.cli.main", "train", "-solver", "solver.prototxt"]
    with Process(argv, tmp_path) as train:
        train.wait_for("Iteration 3 (")
        train.proc.send_signal(signal.SIGHUP)
        hup_line = train.wait_for("Snapshotting solver state to binary proto file snapshots/tiny_iter_")
        train.wait_for("Train net output")  # it carries on after the snapshot
        train.proc.send_signal(signal.SIGINT)
        status = train.finish()
    assert status == 0, "\n".join(train.lines[-30:])
    messages = [line.split("] ", 1)[1] for line in train.lines if "] " in line]
    assert "Optimization stopped early." in messages and messages[-1] == "Optimization Done."
    snapshots = sorted(int(p.name.split("_iter_")[1].split(".")[0])
                       for p in (tmp_path / "snapshots").glob("*.solverstate"))
    hup_iter = int(hup_line.rsplit("_iter_", 1)[1].split(".")[0])
    assert len(snapshots) == 2 and snapshots[0] == hup_iter and hup_iter < snapshots[1] < 1_000_000
    assert (tmp_path / f"snapshots/tiny_iter_{snapshots[1]}.caffemodel").is_file()
