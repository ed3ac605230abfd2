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


FILLER_CASES = sorted(p.name for p in (GOLDEN / "rng" / "fillers").iterdir() if p.is_dir())


@pytest.mark.parametrize("name", FILLER_CASES)
def test_fillers_match_caffe_bitwise(name: str) -> None:
    """A net built in TEST after set_random_seed(S) holds exactly Caffe's initial weights."""
    folder = GOLDEN / "rng" / "fillers" / name
    case = json.loads((folder / "case.json").read_text())
    with np.load(folder / "data.npz") as npz:
        want = {k: npz[k] for k in npz.files}
    recaffe.set_random_seed(case["seed"])
    net = recaffe.Net(str(folder / "net.prototxt"), recaffe.TEST)
    params = net.layer_params
    assert {f"{layer}/{j}" for layer, blobs in params.items() for j in range(len(blobs))} == set(want)
    for key, expected in want.items():
        layer, j = key.split("/")
        got = params[layer][int(j)].data.numpy()
        assert got.shape == expected.shape, key
        assert np.array_equal(got.view(np.uint32), expected.view(np.uint32)), f"{key}: bits differ from Caffe"


def test_unseeded_stream_logs_its_seed(caplog: pytest.LogCaptureFixture) -> None:
    """Without set_random_seed a fresh seed is drawn like Caffe's, and logged so the run repeats."""
    import threading

    from recaffe import rng

    seen: list[int] = []

    def draw() -> None:  # a new thread has no stream yet, like a fresh process
        seen.append(rng.get_rng().rand())

    with caplog.at_level("INFO", logger="recaffe.rng"):
        thread = threading.Thread(target=draw)
        thread.start()
        thread.join()
    logged = [r.getMessage() for r in caplog.records if "seeding the random stream with" in r.getMessage()]
    assert len(logged) == 1
    seed = int(logged[0].split("with ")[1].split()[0])
    assert rng.CaffeRNG(seed).rand() == seen[0]
