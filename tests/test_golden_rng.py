"""Random layers against the real Caffe, bit for bit: nets built after set_random_seed, two forwards."""

from __future__ import annotations

import json

import numpy as np
import pytest

import recaffe
from tests.conftest import GOLDEN, cuda_available

NET_CASES = ["dropout", "dummy"]
DEVICES = ["cpu", pytest.param("cuda", marks=[
    pytest.mark.gpu, pytest.mark.skipif(not cuda_available(), reason="no CUDA device"),
])]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NET_CASES)
def test_random_layer_matches_caffe_bitwise(name: str, device: str) -> None:
    """Values are drawn on the CPU from Caffe's stream, then moved: CUDA nets match too."""
    folder = GOLDEN / "rng" / name
    case = json.loads((folder / "case.json").read_text())
    with np.load(folder / "data.npz") as npz:
        want = {k: npz[k] for k in npz.files}
    recaffe.set_random_seed(case["seed"])
    phase = recaffe.TRAIN if case["phase"] == "TRAIN" else recaffe.TEST
    net = recaffe.Net(str(folder / "net.prototxt"), phase, device=device)
    for blob_name in net.inputs:  # Dropout's golden input is all ones; DummyData has no inputs
        net.blobs[blob_name].data.fill_(1.0)
    forwards = sorted({key.split("/")[0] for key in want})
    assert forwards == ["forward0", "forward1"]
    for forward in forwards:
        net.forward()
        for key in (k for k in want if k.startswith(forward + "/")):
            got = net.blobs[key.split("/", 1)[1]].data.cpu().numpy()
            expected = want[key]
            assert got.shape == expected.shape, f"{key}: shape {got.shape} != Caffe's {expected.shape}"
            mismatched = int((got.view(np.uint32) != expected.view(np.uint32)).sum())
            assert mismatched == 0, f"{key}: {mismatched} of {got.size} values differ from Caffe's bits"
