"""Thread counts: fixed when asked for, else adapted to the other processes' load for inference."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from recaffe import threads


class FakeMachine:
    """``/proc/stat`` busy seconds, this process's CPU seconds and the clock, advanced by hand."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.wall = self.busy = self.ours = 0.0
        monkeypatch.setattr(threads, "_cpu_busy_seconds", lambda: self.busy)
        monkeypatch.setattr(threads.time, "monotonic", lambda: self.wall)
        monkeypatch.setattr(threads.time, "process_time", lambda: self.ours)

    def run(self, seconds: float, others: float, ours: float) -> None:
        """``seconds`` pass with other processes using ``others`` CPUs and this one ``ours``."""
        self.wall += seconds
        self.ours += ours * seconds
        self.busy += (others + ours) * seconds


@pytest.fixture
def governor(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    before = torch.get_num_threads()
    machine = FakeMachine(monkeypatch)
    gov = threads._Governor()
    gov.base = gov.expected = gov.inference = 4
    gov.cpus = 4
    torch.set_num_threads(4)
    monkeypatch.setattr(threads, "_governor", gov)
    yield gov, machine
    torch.set_num_threads(before)


def test_inference_uses_the_cores_others_leave_free(governor) -> None:  # type: ignore[no-untyped-def]
    gov, machine = governor
    machine.run(1.0, others=0.1, ours=1.0)
    threads.before_forward(adaptive=True)
    assert torch.get_num_threads() == 4
    machine.run(1.0, others=2.6, ours=1.0)  # others keep 2.6 of the 4 cores busy: 1.4 free
    threads.before_forward(adaptive=True)
    assert torch.get_num_threads() == 1
    machine.run(0.1, others=1.9, ours=1.0)  # too soon to sample again: the count stays
    threads.before_forward(adaptive=True)
    assert torch.get_num_threads() == 1
    machine.run(1.0, others=1.9, ours=2.0)
    threads.before_forward(adaptive=True)
    assert torch.get_num_threads() == 2
    machine.run(1.0, others=8.0, ours=1.0)  # never fewer than one
    threads.before_forward(adaptive=True)
    assert torch.get_num_threads() == 1


def test_nets_outside_deploy_mode_keep_the_default_count(governor) -> None:  # type: ignore[no-untyped-def]
    gov, machine = governor
    machine.run(1.0, others=3.0, ours=1.0)
    threads.before_forward(adaptive=True)
    assert torch.get_num_threads() == 1
    threads.before_forward(adaptive=False)  # a plain net between deploy passes: the default
    assert torch.get_num_threads() == 4
    threads.before_forward(adaptive=True)
    assert torch.get_num_threads() == 1


def test_a_fixed_count_is_kept(governor) -> None:  # type: ignore[no-untyped-def]
    gov, machine = governor
    threads.set_num_threads(3)
    machine.run(1.0, others=3.5, ours=1.0)
    threads.before_forward(adaptive=True)
    assert torch.get_num_threads() == 3
    torch.set_num_threads(2)  # set directly: respected as well
    machine.run(1.0, others=3.5, ours=1.0)
    threads.before_forward(adaptive=True)
    threads.before_forward(adaptive=False)
    assert torch.get_num_threads() == 2
    with pytest.raises(ValueError, match="at least 1"):
        threads.set_num_threads(0)


def test_without_proc_stat_the_count_stays(governor, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(threads, "_cpu_busy_seconds", lambda: None)
    governor[1].run(1.0, others=4.0, ours=1.0)
    threads.before_forward(adaptive=True)
    assert torch.get_num_threads() == 4


@pytest.mark.parametrize(("value", "expected"), [("3", 3), (" 1 ", 1), ("", None)])
def test_threads_from_env(monkeypatch: pytest.MonkeyPatch, value: str, expected: int | None) -> None:
    monkeypatch.setenv(threads.ENV_THREADS, value)
    assert threads.threads_from_env() == expected


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_bad_threads_env_is_named(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(threads.ENV_THREADS, value)
    with pytest.raises(ValueError, match=f"RECAFFE_NUM_THREADS={value!r}: expected a positive number"):
        threads.threads_from_env()


def test_env_and_flag_fix_the_count_in_a_fresh_process() -> None:
    code = ("import recaffe, torch; from recaffe.cli import main; print(torch.get_num_threads()); "
            "main.main(['time', '-threads', '2', '-model', 'nope.prototxt']); print(torch.get_num_threads())")
    env = {"RECAFFE_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "2"]
