"""``caffe compare``: two runs of the same solver are identical; a run with one layer's lr_mult
changed differs, and that layer is named first."""

from __future__ import annotations

import pathlib

import pytest

from recaffe.debug import compare
from tests.debug import nets


def train(cli, root: pathlib.Path, run: str, lr_mult: float = 1, fmt: str = "BINARYPROTO") -> str:
    solver = nets.tiny_dir(root, lr_mult=lr_mult, max_iter=3, snapshot=1, snapshot_prefix=f"{run}/tiny",
                           snapshot_format=fmt)
    (root / run).mkdir()
    assert cli("train", "-solver", solver).status == 0
    return str(root / run)


@pytest.fixture
def workdir(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_two_runs_of_one_solver_are_identical(cli, workdir: pathlib.Path) -> None:
    a, b = train(cli, workdir, "a"), train(cli, workdir, "b")
    result = cli("compare", a, b)
    assert result.status == 0, result.err
    assert result.out.splitlines()[-1] == "identical"
    assert "ip1[0]" in result.out and "history[0] (ip1[0])" in result.out
    assert "Snapshot iterations compared: 1, 2, 3" in result.messages
    # single files, and a prefix against a folder
    assert cli("compare", f"{a}/tiny_iter_3.caffemodel", f"{b}/tiny_iter_3.caffemodel").status == 0
    assert cli("compare", f"{a}/tiny_iter_2.solverstate", f"{b}/tiny").status == 0


@pytest.mark.parametrize("fmt", ["BINARYPROTO", "HDF5"])
def test_a_different_lr_mult_is_named_first(cli, workdir: pathlib.Path, fmt: str) -> None:
    a = train(cli, workdir, "a", fmt=fmt)
    b = train(cli, workdir, "b", lr_mult=2, fmt=fmt)
    result = cli("compare", a, b, "-model", "net.prototxt")
    assert result.status == 1
    rows = result.out.splitlines()
    assert rows[1].split()[:2] == ["ip1[0]", "1"]  # diverged at the first snapshot; ip2 only later
    assert rows[-1] == "differ: 8 of 10 blobs; first divergence at iteration 1 in ip1[0]"
    comparison = compare.compare(a, b, model="net.prototxt")
    first_iter = {row.name: row.iteration for row in comparison.rows}
    assert first_iter["ip1[0]"] == 1 and first_iter["ip2[0]"] == 2


def test_tolerances_and_errors(cli, workdir: pathlib.Path) -> None:
    a = train(cli, workdir, "a")
    b = train(cli, workdir, "b", lr_mult=1.0001)
    assert cli("compare", a, b).status == 1
    assert cli("compare", a, b, "-rtol", "0.01").out.splitlines()[-1] == "equal within the tolerance"
    missing = cli("compare", a, str(workdir / "nothing"))
    assert missing.status == 1 and "no snapshots" in missing.fatal()


def test_a_damaged_hdf5_weights_file_is_named(cli, workdir: pathlib.Path) -> None:
    """The HDF5 weights go through recaffe's guarded reader: a truncated file is an error naming it."""
    run = pathlib.Path(train(cli, workdir, "a", fmt="HDF5"))
    weights = run / "tiny_iter_3.caffemodel.h5"
    damaged = run / "damaged.caffemodel.h5"
    damaged.write_bytes(weights.read_bytes()[:1200])
    with pytest.raises(ValueError, match=r"damaged\.caffemodel\.h5"):
        compare.read_weights(str(damaged))
