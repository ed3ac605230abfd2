"""The data-layer cases produced by the real BVLC Caffe: every forward's tops, bit for bit.

Data is produced on the CPU and copied to the net's device, so CUDA nets match too.
"""

from __future__ import annotations

import numpy as np
import pytest

import recaffe
from tests.conftest import GOLDEN, cuda_available

FOLDER = GOLDEN / "data"
CASES = sorted(p.stem for p in FOLDER.glob("*.prototxt"))
TRAIN_CASES = {"lmdb_train": 11}  # case -> the seed the README says was set before building
DEVICES = ["cpu", pytest.param("cuda", marks=[
    pytest.mark.gpu, pytest.mark.skipif(not cuda_available(), reason="no CUDA device"),
])]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", CASES)
def test_data_case_matches_caffe(name: str, device: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FOLDER)  # the prototxts name their sources relative to this folder
    with np.load(f"{name}.npz") as npz:
        golden = {key: npz[key] for key in npz.files}
    if name in TRAIN_CASES:
        recaffe.set_random_seed(TRAIN_CASES[name])
    phase = recaffe.TRAIN if name in TRAIN_CASES else recaffe.TEST
    net = recaffe.Net(f"{name}.prototxt", phase, device=device)
    forwards = 1 + max(int(key.split("/")[0].removeprefix("forward")) for key in golden)
    assert forwards == 4
    for k in range(forwards):
        net.forward()
        for key, want in golden.items():
            step, _, top = key.partition("/")
            if step == f"forward{k}":
                got = net.blobs[top].data.cpu().numpy()
                assert got.shape == want.shape, f"{key}: shape {got.shape} != Caffe's {want.shape}"
                assert np.array_equal(got, want), f"{key}: max |ours - Caffe| = {np.abs(got - want).max()}"
