"""Atomic writes (recaffe.io.atomic): a file appears complete under its name or not at all, a failed
write names the file and leaves nothing partial, and a solver whose snapshot fails keeps training."""

from __future__ import annotations

import errno
import logging

import pytest

from recaffe import errors
from recaffe.io import atomic, snapshot
from tests.solvers import least_squares as ls


def _disk_full(path: str) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_write_replaces_the_file_whole(tmp_path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"old")
    atomic.write_bytes(path, b"new contents", "test file")
    assert path.read_bytes() == b"new contents"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]


def test_a_failed_write_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"old")
    monkeypatch.setattr(atomic, "_fsync_file", _disk_full)  # the disk fills while the file is written
    with pytest.raises(errors.FileWriteError) as info:
        atomic.write_bytes(path, b"new", "test file")
    assert str(info.value) == (f"cannot write the test file {str(path)!r}: No space left on device "
                               "(free some disk space and try again)")
    assert info.value.path == str(path)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]  # the temporary file is gone


def test_other_errors_pass_through_and_leave_nothing(tmp_path) -> None:
    def write(temp: str) -> None:
        with open(temp, "wb") as f:
            f.write(b"partial")
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        atomic.write_with(tmp_path / "y.bin", "test file", write)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["BINARYPROTO", "HDF5"])
def test_a_failed_snapshot_is_logged_and_training_goes_on(tmp_path, monkeypatch, caplog, fmt) -> None:
    param = ls.solver_param(extra=f'snapshot: 2 snapshot_prefix: "{tmp_path}/s" snapshot_format: {fmt}')
    solver, _ = ls.make_solver(param)
    real_fsync = atomic._fsync_file
    monkeypatch.setattr(atomic, "_fsync_file", _disk_full)
    with caplog.at_level(logging.ERROR, logger="recaffe.solver"):
        solver.step(3)
    assert solver.iter == 3
    ext = ".caffemodel.h5" if fmt == "HDF5" else ".caffemodel"
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        f"cannot write the {'HDF5 weights file' if fmt == 'HDF5' else 'caffemodel'} "
        f"{str(tmp_path / ('s_iter_2' + ext))!r}: No space left on device (free some disk space and try "
        "again); training continues and the next snapshot tries again"]
    assert list(tmp_path.iterdir()) == []  # no partial file under any name
    monkeypatch.setattr(atomic, "_fsync_file", real_fsync)  # space again: the user retries
    solver.snapshot()
    state_ext = ".solverstate.h5" if fmt == "HDF5" else ".solverstate"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"s_iter_3{ext}", f"s_iter_3{state_ext}"]
    assert snapshot.load(tmp_path / f"s_iter_3{state_ext}").iter == 3
