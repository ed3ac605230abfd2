"""Thread counts: one per core unless fixed; deploy-mode passes share their pieces among workers."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import torch

from recaffe import threads


@pytest.fixture
def governor(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    monkeypatch.setattr(threads, "_governor", threads._Governor())
    yield threads._governor
    torch.set_num_threads(before)


def test_a_deploy_pass_runs_its_kernels_on_one_thread_and_shares_the_pieces(governor) -> None:  # type: ignore[no-untyped-def]
    seen: dict[str, int] = {}

    def piece(name: str) -> None:
        seen[threading.current_thread().name + name] = torch.get_num_threads()

    with threads.inference() as workers:
        assert workers.count == 3
        assert torch.get_num_threads() == 1
        with threads.inference() as inner:  # a deploy net run from inside another: the same workers
            assert inner is workers and torch.get_num_threads() == 1
        workers.run([lambda i=i: piece(str(i)) for i in range(30)])
    assert len(seen) == 30 and set(seen.values()) == {1}  # every kernel on one thread, wherever it ran
    assert torch.get_num_threads() == 3  # the count is back for plain nets
    fresh: list[int] = []
    thread = threading.Thread(target=lambda: fresh.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert fresh == [3]  # the workers' own count is not the default of new threads


def test_a_fixed_count_is_kept(governor) -> None:  # type: ignore[no-untyped-def]
    threads.set_num_threads(2)
    threads.before_forward()
    assert torch.get_num_threads() == 2
    with threads.inference() as workers:
        assert workers.count == 2
    torch.set_num_threads(1)  # set directly: respected as well
    threads.before_forward()
    assert torch.get_num_threads() == 1
    with threads.inference() as workers:
        assert workers.count == 1
    assert torch.get_num_threads() == 1
    with pytest.raises(ValueError, match="at least 1"):
        threads.set_num_threads(0)


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


@pytest.mark.parametrize(("given", "torch_first", "expected"), [
    ({}, False, ["PASSIVE", "10000"]),
    ({"GOMP_SPINCOUNT": "500"}, False, ["PASSIVE", "500"]),
    ({"OMP_WAIT_POLICY": "active"}, False, ["active", "unset"]),
    ({}, True, ["unset", "unset"]),
])
def test_openmp_threads_spin_briefly_then_sleep_unless_told_otherwise(
        given: dict[str, str], torch_first: bool, expected: list[str]) -> None:
    code = ("import os, sys; " + ("import torch; " if torch_first else "") +
            "import recaffe; print(os.environ.get('OMP_WAIT_POLICY', 'unset'), "
            "os.environ.get('GOMP_SPINCOUNT', 'unset'))")
    env = {"PATH": "/usr/bin:/bin", **given}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == expected
