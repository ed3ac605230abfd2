"""Every layer case produced by the real BVLC Caffe, checked through the pycaffe API (as it was
recorded): tops, bottom diffs, param diffs and params after a forward and backward."""

from __future__ import annotations

import json

import numpy as np
import pytest

import caffe
from tests.conftest import GOLDEN

CASES = sorted(p.name for p in (GOLDEN / "layers").iterdir() if p.is_dir())


def assert_matches(name: str, got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape, f"{name}: shape {got.shape} != Caffe's {want.shape}"
    tolerance = 1e-4 * max(1.0, float(np.abs(want).max()) if want.size else 1.0)
    error = float(np.abs(got.astype(np.float64) - want).max()) if want.size else 0.0
    assert error <= tolerance, f"{name}: max |ours - Caffe| = {error:.3g} > {tolerance:.3g}"


def load_case(name: str) -> tuple[dict, dict[str, np.ndarray], caffe.Net]:
    folder = GOLDEN / "layers" / name
    case = json.loads((folder / "case.json").read_text())
    with np.load(folder / "data.npz") as npz:
        data = {k: npz[k] for k in npz.files}
    phase = caffe.TRAIN if case["phase"] == "TRAIN" else caffe.TEST
    return case, data, caffe.Net(str(folder / "net.prototxt"), phase)


def entries(data: dict[str, np.ndarray], kind: str) -> list[tuple[str, np.ndarray]]:
    """(name, values) of the npz keys ``<kind>/<name>``."""
    return [(key.partition("/")[2], values) for key, values in data.items() if key.partition("/")[0] == kind]


@pytest.mark.parametrize("name", CASES)
def test_layer_matches_caffe(name: str) -> None:
    case, data, net = load_case(name)
    for blob, values in entries(data, "bottom"):
        net.blobs[blob].reshape(*values.shape)
        net.blobs[blob].data[...] = values
    for j, values in entries(data, "param"):
        net.params["L"][int(j)].data[...] = values
    net.forward()
    for blob, values in entries(data, "top"):
        assert_matches(f"top/{blob}", net.blobs[blob].data, values)
    if not case["backward"]:
        return
    for blob, values in entries(data, "top_diff"):
        net.blobs[blob].diff[...] = values
    net.backward()
    for blob, values in entries(data, "bottom_diff"):
        assert_matches(f"bottom_diff/{blob}", net.blobs[blob].diff, values)
    for j, values in entries(data, "param_diff"):
        assert_matches(f"param_diff/{j}", net.params["L"][int(j)].diff, values)
    for j, values in entries(data, "param_after"):
        assert_matches(f"param_after/{j}", net.params["L"][int(j)].data, values)
