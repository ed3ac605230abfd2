"""BVLC's published nets (../shared/caffe-models): every deploy net loads and runs forward."""

from __future__ import annotations

import pathlib

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

import recaffe
from recaffe.data import db
from recaffe.io import binaryproto, prototxt
from recaffe.proto import caffe_pb2
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


# ------------------------------------------------------------------ train_val nets
# Datum shapes the published nets read (their databases are not shipped): (C, H, W).
DATUM_SHAPES = {
    "examples/mnist": (1, 28, 28),
    "examples/siamese": (2, 28, 28),
    "examples/cifar10": (3, 32, 32),
}
IMAGENET = (3, 256, 256)
STAGES = {"examples/mnist/mnist_autoencoder.prototxt": ["test-on-test"]}  # its solver's test_state
HEAVY = {"models/bvlc_alexnet", "models/bvlc_reference_caffenet", "models/finetune_flickr_style",
         "examples/finetune_pascal_detection"}


def train_val_nets() -> list[pathlib.Path]:
    if not MODELS.is_dir():
        return []
    return [p for p in sorted(MODELS.rglob("*.prototxt"))
            if "solver" not in p.name and p not in deploy_nets()
            and "Python" not in {layer.type for layer in prototxt.read_net_param(p).layer}]


def phases_for(path: pathlib.Path) -> list[tuple[pathlib.Path, int]]:
    heavy = str(path.parent.relative_to(MODELS)) in HEAVY  # ImageNet-size fillers: one phase is enough
    return [(path, phase) for phase in ([recaffe.TRAIN] if heavy else [recaffe.TRAIN, recaffe.TEST])]


class SyntheticSources:
    """Small stand-ins for the databases, image lists, window files and mean files a net names."""

    def __init__(self, root: pathlib.Path, datum_shape: tuple[int, int, int]) -> None:
        self.root, self.shape = root, datum_shape
        self.rng = np.random.default_rng(0)
        self.count = 0

    def path(self, suffix: str) -> str:
        self.count += 1
        return str(self.root / f"source{self.count}{suffix}")

    def mean_file(self, shape: tuple[int, int, int]) -> str:
        path = self.path(".binaryproto")
        binaryproto.write_mean(path, self.rng.uniform(0, 255, shape).astype(np.float32))
        return path

    def lmdb(self) -> str:
        path = self.path("_lmdb")
        with db.open_db(path, "lmdb", "new") as database:
            txn = database.transaction()
            for i in range(4):
                pixels = self.rng.integers(0, 256, self.shape, dtype=np.uint8)
                datum = caffe_pb2.Datum(channels=self.shape[0], height=self.shape[1], width=self.shape[2],
                                        data=pixels.tobytes(), label=i % 2)
                txn.put(f"{i:08d}", datum.SerializeToString())
            txn.commit()
        return path

    def image(self) -> str:
        path = self.path(".png")
        Image.fromarray(self.rng.integers(0, 256, (300, 320, 3), dtype=np.uint8)).save(path)
        return path

    def image_list(self) -> str:
        path = self.path(".txt")
        pathlib.Path(path).write_text("".join(f"{self.image()} {i % 2}\n" for i in range(3)))
        return path

    def window_file(self) -> str:
        path = self.path(".txt")
        lines = []
        for i in range(2):
            lines += [f"# {i}", self.image(), "3", "300", "320", "3",
                      "1 0.8 10 10 200 200", "0 0.1 50 60 120 250", "2 0.6 0 0 319 299"]
        pathlib.Path(path).write_text("\n".join(lines) + "\n")
        return path

    def hdf5_list(self, tops: list[str]) -> str:
        path = self.path(".h5")
        with h5py.File(path, "w") as f:
            f["data"] = self.rng.normal(size=(6, 4)).astype(np.float32)
            for name in tops[1:]:
                f[name] = (np.arange(6) % 2).astype(np.float32)
        listing = self.path(".txt")
        pathlib.Path(listing).write_text(path + "\n")
        return listing

    def rewrite(self, layer: caffe_pb2.LayerParameter) -> None:
        """Point a data layer at synthetic sources, with a batch of 2 to keep the test quick."""
        if layer.transform_param.mean_file:
            crop = layer.transform_param.crop_size
            mean_shape = IMAGENET if crop else self.shape
            layer.transform_param.mean_file = self.mean_file(mean_shape)
        if layer.type == "Data":
            layer.data_param.source = self.lmdb()
            layer.data_param.backend = caffe_pb2.DataParameter.LMDB
            layer.data_param.batch_size = 2
        elif layer.type == "ImageData":
            layer.image_data_param.source = self.image_list()
            layer.image_data_param.root_folder = ""
            layer.image_data_param.batch_size = 2
        elif layer.type == "WindowData":
            layer.window_data_param.source = self.window_file()
            layer.window_data_param.root_folder = ""
            layer.window_data_param.batch_size = 4
        elif layer.type == "HDF5Data":
            layer.hdf5_data_param.source = self.hdf5_list(list(layer.top))
            layer.hdf5_data_param.batch_size = 2


@pytest.mark.skipif(not MODELS.is_dir(), reason="../shared/caffe-models is not present")
@pytest.mark.parametrize(
    ("path", "phase"),
    [case for path in train_val_nets() for case in phases_for(path)],
    ids=lambda v: str(v.relative_to(MODELS)) if isinstance(v, pathlib.Path) else ("TRAIN", "TEST")[v],
)
def test_train_val_net_builds_and_runs(path: pathlib.Path, phase: int, tmp_path: pathlib.Path) -> None:
    folder = str(path.parent.relative_to(MODELS))
    sources = SyntheticSources(tmp_path, DATUM_SHAPES.get(folder, IMAGENET))
    param = prototxt.read_net_param(path)
    for layer in param.layer:
        sources.rewrite(layer)
    recaffe.set_random_seed(1)
    net = recaffe.Net(param, phase, stages=STAGES.get(str(path.relative_to(MODELS)), ()))
    loss = net.forward()
    assert np.isfinite(loss)
    if phase == recaffe.TRAIN:
        net.backward()
        assert all(bool(torch.isfinite(p.blob.diff).all()) for p in net.learnable_params)
