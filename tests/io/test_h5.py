"""Damaged and forged HDF5 files (solver states, weights, HDF5Data sources): recaffe errors naming the
file, declared sizes checked before reading."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from recaffe import errors
from recaffe.data import DataError, hdf5
from recaffe.io import snapshot


def _state(path: pathlib.Path, **datasets: object) -> pathlib.Path:
    """An HDF5 solver state with the given datasets replacing the good ones (None drops one)."""
    good: dict[str, object] = {"iter": np.array([3], np.int32), "current_step": np.array([0], np.int32)}
    good.update(datasets)
    with h5py.File(path, "w") as f:
        f.create_group("history").create_dataset("0", data=np.ones(4, np.float32))
        for name, value in good.items():
            if value is not None:
                f.create_dataset(name, data=value)
    return path


def _message(path: pathlib.Path, detail: str, hint: str = "") -> str:
    return f"cannot read the solver state {str(path)!r}: {detail}" + (f". {hint}" if hint else "")


def test_empty_iter(tmp_path) -> None:
    path = _state(tmp_path / "s.solverstate.h5", iter=np.array([], np.int32))
    with pytest.raises(errors.FileReadError) as info:
        snapshot.load(path)
    assert str(info.value) == _message(path, "dataset '/iter' holds 0 values where 1 are expected")
    assert info.value.path == str(path)


def test_nan_current_step(tmp_path) -> None:
    path = _state(tmp_path / "s.solverstate.h5", current_step=np.array([np.nan], np.float32))
    with pytest.raises(errors.FileReadError) as info:
        snapshot.load(path)
    assert str(info.value) == _message(path, "dataset 'current_step' must hold one 32-bit integer, got nan")


def test_learned_net_is_a_group(tmp_path) -> None:
    path = _state(tmp_path / "s.solverstate.h5")
    with h5py.File(path, "a") as f:
        f.create_group("learned_net")
    with pytest.raises(errors.FileReadError) as info:
        snapshot.load(path)
    assert str(info.value) == _message(path, "dataset 'learned_net' is a group, not a dataset")


def test_learned_net_is_read_as_a_c_string(tmp_path) -> None:
    path = _state(tmp_path / "s.solverstate.h5", learned_net=np.bytes_(b"net.caffemodel\0junk"))
    assert snapshot.load(path).learned_net == "net.caffemodel"
    path = _state(tmp_path / "e.solverstate.h5", learned_net=np.bytes_(b"\0junk"))
    with pytest.raises(errors.FileReadError) as info:
        snapshot.load(path)
    assert str(info.value) == _message(path, "'learned_net' is an empty file name")


def test_embedded_null_byte_in_a_binary_state(tmp_path) -> None:
    path = tmp_path / "s.solverstate"
    snapshot.save_binary(path, snapshot.SolverState(iter=1, learned_net="a.caffemodel\0b"))
    assert snapshot.load(path).learned_net == "a.caffemodel"


def test_not_an_hdf5_file(tmp_path) -> None:
    path = tmp_path / "s.solverstate.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 50)
    with pytest.raises(errors.FileReadError, match=r"^cannot read the solver state '.*s.solverstate.h5': "
                       r".*\. It is not an HDF5 file, or it is damaged$"):
        snapshot.load(path)


def _forged(path: pathlib.Path, name: str, shape: tuple[int, ...], **options: object) -> pathlib.Path:
    """A few-KB file whose dataset ``name`` declares ``shape`` but stores nothing."""
    with h5py.File(path, "a") as f:
        if name in f:
            del f[name]
        f.create_dataset(name, shape=shape, dtype=np.float32, **options)
    assert path.stat().st_size < 100_000
    return path


def test_declared_size_beyond_the_file(tmp_path) -> None:
    path = _forged(_state(tmp_path / "s.solverstate.h5"), "history/0", (10**9,))
    with pytest.raises(errors.FileReadError) as info:
        snapshot.load(path)
    assert str(info.value) == _message(
        path, "dataset '/history/0' declares shape (1000000000,) (4000000000 bytes) but the file stores "
        "only 0 bytes of it", errors.CORRUPT_HINT)
    with pytest.raises(errors.FileReadError) as info:
        snapshot.load(path, history_sizes=[4])
    assert str(info.value) == _message(path, "dataset '/history/0' holds 1000000000 values where 4 are "
                                       "expected")


def test_declared_size_beyond_memory(tmp_path) -> None:
    path = _forged(_state(tmp_path / "s.solverstate.h5"), "history/0", (10**12,), chunks=(4096,),
                   compression="gzip")
    with pytest.raises(errors.FileReadError, match=r"dataset '/history/0' declares shape \(1000000000000,\) "
                       r"\(4000000000000 bytes\), more than half of the memory available"):
        snapshot.load(path)


def test_hdf5_data_file_declaring_a_huge_dataset(tmp_path) -> None:
    path = _forged(tmp_path / "d.h5", "data", (10**8, 10))
    with pytest.raises(DataError) as info:
        hdf5.load_datasets(str(path), ["data"], np.float32)
    assert str(info.value) == (
        f"cannot read the HDF5 data file {str(path)!r}: dataset '/data' declares shape (100000000, 10) "
        f"(4000000000 bytes) but the file stores only 0 bytes of it. {errors.CORRUPT_HINT}")


_PEAK = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from recaffe import errors
    from recaffe.data import hdf5
    from recaffe.io import snapshot
    for path, kind in zip(sys.argv[1::2], sys.argv[2::2]):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            if kind == "state":
                snapshot.load(path)
            else:
                hdf5.load_datasets(path, ["data"], np.float32)
        except errors.RecaffeError:
            pass
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
""")


def test_peak_memory_of_a_huge_declared_dataset_stays_small(tmp_path) -> None:
    # 8 GB declared by files of a few KB: a solver state's history blob, an HDF5Data dataset
    state = _forged(_state(tmp_path / "s.solverstate.h5"), "history/0", (2 * 10**9,))
    data = _forged(tmp_path / "d.h5", "data", (10**9, 2))
    out = subprocess.run([sys.executable, "-c", _PEAK, str(state), "state", str(data), "data"],
                         capture_output=True, text=True, check=True, env={"OMP_NUM_THREADS": "1", "PATH": ""},
                         cwd=pathlib.Path(__file__).resolve().parents[2])
    peaks = [int(line) for line in out.stdout.split()]
    assert len(peaks) == 2 and all(peak < 100 * 2**20 for peak in peaks), peaks
