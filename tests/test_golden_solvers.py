"""Every solver case in tests/golden/solvers against the real Caffe, step by step.

A case is a solver.prototxt (random_seed 52) over a small conv net fed through Input layers.
The freshly built net must hold Caffe's initial weights bit for bit (recaffe's random stream is
Caffe's); then, before step i, data/<i> and label/<i> are fed, and after the step every param
must match step<i>/<layer>/<j> (tolerance 1e-4·max(1, max|golden|), 1e-3 after step 4) and the
loss must match loss[i-1]. The snapshot_* cases first restore Caffe's own snap_iter_4 files
(binary and HDF5) and run steps 5 to 8.
"""

from __future__ import annotations

import pathlib
import shutil

import numpy as np
import pytest
import torch

import recaffe
from tests.conftest import GOLDEN

CASES = sorted(p.name for p in (GOLDEN / "solvers").iterdir() if p.is_dir())
STEPS = 8


def params_of(solver: recaffe.Solver) -> dict[str, torch.Tensor]:
    return {f"{name}/{j}": blob.data for name, blobs in solver.net.layer_params.items()
            for j, blob in enumerate(blobs)}


def assert_close(ours: torch.Tensor, golden: np.ndarray, tol: float, what: str) -> None:
    golden_t = torch.from_numpy(golden).reshape(ours.shape).to(ours.device, ours.dtype)
    err = (ours - golden_t).abs().max().item() if ours.numel() else 0.0
    bound = tol * max(1.0, float(np.abs(golden).max()) if golden.size else 0.0)
    assert err <= bound, f"{what}: max |ours - caffe| = {err:.3g} > {bound:.3g}"


def test_all_cases_present() -> None:
    assert len(CASES) == 18, CASES


@pytest.mark.parametrize("case", CASES)
def test_solver_matches_caffe(case: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = GOLDEN / "solvers" / case
    folder = tmp_path / case
    shutil.copytree(source, folder)
    monkeypatch.chdir(folder)  # Caffe resolves net: and learned_net relative to the working directory
    golden = np.load("data.npz")
    solver = recaffe.load_solver("solver.prototxt")
    params = params_of(solver)
    init_keys = sorted(k[len("init/"):] for k in golden.files if k.startswith("init/"))
    assert sorted(params) == init_keys
    for key in init_keys:
        expected = torch.from_numpy(golden[f"init/{key}"]).reshape(params[key].shape).to(params[key].device)
        assert torch.equal(params[key], expected), f"init/{key} differs from Caffe's filler output"

    first = 1
    if case.startswith("snapshot_"):
        state = next(p.name for p in folder.iterdir() if ".solverstate" in p.name)
        solver.restore(state)
        assert solver.iter == 4
        first = 5
    for i in range(first, STEPS + 1):
        solver.net.blobs["data"].data.copy_(torch.from_numpy(golden[f"data/{i}"]))
        solver.net.blobs["label"].data.copy_(torch.from_numpy(golden[f"label/{i}"]))
        solver.step(1)
        tol = 1e-4 if i <= 4 else 1e-3
        loss = solver.net.blobs["loss"].data.reshape(())
        assert_close(loss, golden["loss"][i - 1 : i], tol, f"step {i} loss")
        for key, blob_data in params.items():
            assert_close(blob_data, golden[f"step{i}/{key}"], tol, f"step {i} param {key}")
    assert solver.iter == STEPS
