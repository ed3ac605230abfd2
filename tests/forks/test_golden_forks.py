"""Golden numbers from the forks' own C++ Caffe, replayed through recaffe.

``tests/forks/golden/<dialect>/<case>/`` were written by ``scripts/make_fork_golden.py`` with each
fork's pycaffe (weiliu89/caffe ``ssd``, rbgirshick/caffe-fast-rcnn ``faster-rcnn``,
alexgkendall/caffe-segnet, hszhao/PSPNet; built by ``scripts/build-fork-caffe.sh``), in the format
of ../shared/golden/layers: a layer ``L`` fed by inputs ``b<i>``, its tops after a forward, and the
bottom and param diffs after one backward. recaffe reads each prototxt in the case's dialect and
must match within the golden README's tolerance (random layers, seeded, and data layers: exactly).

A case whose layer recaffe does not have fails. ``<dialect>/caffemodel/`` holds a small net saved by
the fork's own ``Net.save`` (the fork's field numbers): recaffe reads it back with every fork
parameter intact.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import torch
from google.protobuf import text_format

import recaffe
from recaffe import forks
from recaffe.forks import reading
from recaffe.io import prototxt
from recaffe.registry import LAYERS

GOLDEN_FORKS = pathlib.Path(__file__).parent / "golden"
CASES = sorted(f"{case.parent.name}/{case.name}" for case in GOLDEN_FORKS.glob("*/*")
               if (case / "case.json").is_file())
CAFFEMODELS = sorted(folder.parent.name for folder in GOLDEN_FORKS.glob("*/caffemodel"))


def known_dialects() -> set[str]:
    return {dialect.name for dialect in forks.dialects()}


def require(dialect: str, layer_type: str | None) -> None:
    """Fail (never skip) when recaffe lacks the case's dialect or layer type."""
    if dialect not in known_dialects():
        pytest.fail(f"recaffe has no dialect {dialect!r}, which the fork's golden case needs")
    if layer_type is not None and layer_type not in LAYERS.names(dialect) and layer_type not in LAYERS:
        pytest.fail(f"recaffe has no layer type {layer_type!r} in dialect {dialect!r}, which the fork's "
                    "golden case needs")


def load(name: str) -> tuple[pathlib.Path, dict, dict[str, np.ndarray]]:
    folder = GOLDEN_FORKS / name
    case = json.loads((folder / "case.json").read_text())
    with np.load(folder / "data.npz") as npz:
        data = {key: npz[key] for key in npz.files}
    return folder, case, data


def entries(data: dict[str, np.ndarray], kind: str) -> list[tuple[str, np.ndarray]]:
    """(name, values) of the npz keys ``<kind>/<name>``."""
    return [(key.partition("/")[2], values) for key, values in data.items() if key.partition("/")[0] == kind]


def assert_matches(name: str, got: torch.Tensor, want: np.ndarray, exact: bool = False) -> None:
    ours = got.detach().cpu().numpy()
    assert ours.shape == want.shape, f"{name}: shape {ours.shape} != the fork's {want.shape}"
    if exact:
        differ = int((ours != want).sum())
        assert differ == 0, f"{name}: {differ} of {want.size} values differ from the fork's"
        return
    tolerance = 1e-4 * max(1.0, float(np.abs(want).max()) if want.size else 1.0)
    error = float(np.abs(ours.astype(np.float64) - want).max()) if want.size else 0.0
    assert error <= tolerance, f"{name}: max |ours - fork| = {error:.3g} > {tolerance:.3g}"


def phase_of(case: dict) -> int:
    return recaffe.TRAIN if case["phase"] == "TRAIN" else recaffe.TEST


@pytest.mark.parametrize("name", CASES)
def test_fork_layer_matches_the_forks_caffe(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, case, data = load(name)
    require(case["dialect"], case["type"])
    if case.get("kind") == "data":
        monkeypatch.chdir(folder)  # sources are relative to the case folder
        if "seed" in case:
            recaffe.set_random_seed(case["seed"])
        net = recaffe.Net("net.prototxt", phase_of(case), dialect=case["dialect"])
        for k in range(case["forwards"]):
            net.forward()
            for blob, values in entries(data, f"forward{k}"):
                assert_matches(f"forward{k}/{blob}", net.blobs[blob].data, values, exact=True)
        return
    seeded = "seed" in case
    if seeded:
        recaffe.set_random_seed(case["seed"])
    net = recaffe.Net(str(folder / "net.prototxt"), phase_of(case), dialect=case["dialect"])
    assert net.layer_by_name("L").type == case["type"]
    inputs = case.get("inputs", ["input"] * len(case["bottoms"]))
    for (blob, values), how in zip(entries(data, "bottom"), inputs):
        if how == "parameter":
            net.layer_params[f"in{blob[1:]}"][0].data.copy_(torch.from_numpy(values))
        else:
            net.blobs[blob].reshape(values.shape)
            net.blobs[blob].data.copy_(torch.from_numpy(values))
    params = net.layer_params.get("L", [])
    assert len(params) == len(entries(data, "param")), "L's blob count differs from the fork's"
    for j, values in entries(data, "param"):
        assert tuple(params[int(j)].shape) == values.shape, f"param/{j}: shape differs from the fork's"
        params[int(j)].data.copy_(torch.from_numpy(values))
    net.forward()
    for blob, values in entries(data, "top"):
        assert_matches(f"top/{blob}", net.blobs[blob].data, values, exact=seeded)
    if not case["backward"]:
        return
    for blob, values in entries(data, "top_diff"):
        net.blobs[blob].diff.copy_(torch.from_numpy(values))
    net.backward()
    for blob, values in entries(data, "bottom_diff"):
        assert_matches(f"bottom_diff/{blob}", net.blobs[blob].diff, values, exact=seeded)
    for j, values in entries(data, "param_diff"):
        assert_matches(f"param_diff/{j}", params[int(j)].diff, values)
    for j, values in entries(data, "param_after"):
        assert_matches(f"param_after/{j}", params[int(j)].data, values)


@pytest.mark.parametrize("dialect", CAFFEMODELS)
def test_forks_own_caffemodel_reads_back_with_every_fork_param(dialect: str) -> None:
    """The fork's Net.save wrote the caffemodel; the fork's own caffe_pb2 read it into expected.prototxt."""
    require(dialect, None)
    folder = GOLDEN_FORKS / dialect / "caffemodel"
    fork = forks.get_dialect(dialect)
    expected = text_format.Parse((folder / "expected.prototxt").read_text(), fork.net_parameter())
    path = folder / "net.caffemodel"
    assert fork.raise_net(reading.read_net_binary(path, dialect)) == expected
    upgraded = {layer.name: layer for layer in prototxt.read_net_weights(path, dialect=dialect).layer}
    for layer in expected.layer:  # what the Net is built from: the same layers (inputs become Input layers)
        assert fork.raise_layer(upgraded[layer.name]) == layer, layer.name
    net = recaffe.Net(str(folder / "net.prototxt"), recaffe.TEST, weights_file=str(path), dialect=dialect)
    for layer in expected.layer:
        for j, blob in enumerate(layer.blobs):
            got = net.layer_params[layer.name][j].data.numpy().reshape(-1)
            assert np.array_equal(got, np.asarray(blob.data, dtype=np.float32)), f"{layer.name} blob {j}"
