"""Every layer case produced by the real BVLC Caffe: tops, bottom diffs, param diffs, params after."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import recaffe
from tests.conftest import GOLDEN

CASES = sorted(p.name for p in (GOLDEN / "layers").iterdir() if p.is_dir())


def assert_matches(name: str, got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape, f"{name}: shape {got.shape} != Caffe's {want.shape}"
    tolerance = 1e-4 * max(1.0, float(np.abs(want).max()) if want.size else 1.0)
    error = float(np.abs(got.astype(np.float64) - want).max()) if want.size else 0.0
    assert error <= tolerance, f"{name}: max |ours - Caffe| = {error:.3g} > {tolerance:.3g}"


def load_case(name: str) -> tuple[dict, dict[str, np.ndarray], recaffe.Net]:
    folder = GOLDEN / "layers" / name
    case = json.loads((folder / "case.json").read_text())
    with np.load(folder / "data.npz") as npz:
        data = {k: npz[k] for k in npz.files}
    phase = recaffe.TRAIN if case["phase"] == "TRAIN" else recaffe.TEST
    return case, data, recaffe.Net(str(folder / "net.prototxt"), phase)


def set_values(blob: recaffe.Blob, values: np.ndarray, diff: bool = False) -> None:
    target = blob.diff if diff else blob.data
    target.copy_(torch.from_numpy(np.ascontiguousarray(values)).reshape(target.shape))


@pytest.mark.parametrize("name", CASES)
def test_layer_matches_caffe(name: str) -> None:
    case, data, net = load_case(name)
    blobs = net.blobs
    layer = net.layer_by_name("L")
    for key, values in data.items():
        kind, _, which = key.partition("/")
        if kind == "bottom":
            blobs[which].reshape(values.shape)
            set_values(blobs[which], values)
        elif kind == "param":
            set_values(layer.blobs[int(which)], values)
    net.forward()
    for key, values in data.items():
        kind, _, which = key.partition("/")
        if kind == "top":
            assert_matches(key, blobs[which].data.numpy(), values)
    if not case["backward"]:
        return
    for key, values in data.items():
        kind, _, which = key.partition("/")
        if kind == "top_diff":
            set_values(blobs[which], values, diff=True)
    net.backward()
    for key, values in data.items():
        kind, _, which = key.partition("/")
        if kind == "bottom_diff":
            assert_matches(key, blobs[which].diff.numpy(), values)
        elif kind == "param_diff":
            assert_matches(key, layer.blobs[int(which)].diff.numpy(), values)
        elif kind == "param_after":
            assert_matches(key, layer.blobs[int(which)].data.numpy(), values)
