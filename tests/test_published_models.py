"""BVLC's published nets (../shared/caffe-models): every deploy net loads and runs forward."""

from __future__ import annotations

import pathlib

import pytest
import torch

import recaffe
from recaffe.io import prototxt
from tests.conftest import SHARED

MODELS = SHARED / "caffe-models"
DATA_LAYERS = {"Data", "ImageData", "HDF5Data", "WindowData", "MemoryData", "Python"}


def deploy_nets() -> list[pathlib.Path]:
    if not MODELS.is_dir():
        return []
    found = []
    for path in sorted(MODELS.rglob("*.prototxt")):
        if "solver" in path.name:
            continue
        types = {layer.type for layer in prototxt.read_net_param(path).layer}
        if not types & DATA_LAYERS:
            found.append(path)
    return found


@pytest.mark.skipif(not MODELS.is_dir(), reason="../shared/caffe-models is not present")
@pytest.mark.parametrize("path", deploy_nets(), ids=lambda p: str(p.relative_to(MODELS)))
def test_deploy_net_runs_forward(path: pathlib.Path) -> None:
    recaffe.set_random_seed(1)
    net = recaffe.Net(str(path), recaffe.TEST)
    generator = torch.Generator().manual_seed(0)
    for params in net.layer_params.values():
        for blob in params:
            blob.data.copy_(torch.randn(blob.shape, generator=generator) * 0.01)
    for name in net.inputs:  # one item per batch keeps the big nets quick
        blob = net.blobs[name]
        blob.reshape((1, *blob.shape[1:]))
        blob.data.copy_(torch.randn(blob.shape, generator=generator))
    net.reshape()
    net.forward()
    for name in net.outputs:
        out = net.blobs[name].data
        assert out.shape[0] == 1 and bool(torch.isfinite(out).all()), name
