"""The data-layer cases produced by the real BVLC Caffe: every forward's tops, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import recaffe
from tests.conftest import GOLDEN

FOLDER = GOLDEN / "data"
CASES = sorted(p.stem for p in FOLDER.glob("*.prototxt"))
TRAIN_CASES = {"lmdb_train": 11}  # case -> the seed the README says was set before building


@pytest.mark.parametrize("name", CASES)
def test_data_case_matches_caffe(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FOLDER)  # the prototxts name their sources relative to this folder
    with np.load(f"{name}.npz") as npz:
        golden = {key: npz[key] for key in npz.files}
    if name in TRAIN_CASES:
        recaffe.set_random_seed(TRAIN_CASES[name])
    net = recaffe.Net(f"{name}.prototxt", recaffe.TRAIN if name in TRAIN_CASES else recaffe.TEST)
    forwards = 1 + max(int(key.split("/")[0].removeprefix("forward")) for key in golden)
    for k in range(forwards):
        net.forward()
        for key, want in golden.items():
            step, _, top = key.partition("/")
            if step == f"forward{k}":
                got = net.blobs[top].data.numpy()
                assert got.shape == want.shape, f"{key}: shape {got.shape} != Caffe's {want.shape}"
                assert np.array_equal(got, want), f"{key}: max |ours - Caffe| = {np.abs(got - want).max()}"
