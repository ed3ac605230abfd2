"""The benchmarked nets: Caffe's published prototxts from ``../shared/caffe-models``, fed synthetic data.

Training nets have their Data layers replaced by Input layers of the batch's shapes (so no
database is needed); the solver settings (rate, lr policy, momentum, weight decay) come from the
published solver files. Deploy nets are used as published.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

import torch

import recaffe
from recaffe.io import prototxt
from recaffe.proto import caffe_pb2

ROOT = pathlib.Path(__file__).resolve().parent.parent


def caffe_models() -> pathlib.Path | None:
    """``shared/caffe-models`` beside the checkout (or beside the folder holding a worktree)."""
    for base in (ROOT.parent, ROOT.parent.parent):
        path = base / "shared" / "caffe-models"
        if path.is_dir():
            return path
    return None


def require_caffe_models() -> pathlib.Path:
    path = caffe_models()
    if path is None:
        raise FileNotFoundError("shared/caffe-models (the published Caffe prototxts) is not next to "
                                f"the checkout {ROOT}")
    return path


@dataclass(frozen=True)
class TrainSpec:
    """A training benchmark: the train/test prototxt, its solver, and the batch it reads."""

    name: str
    net: str
    solver: str
    data_shape: tuple[int, ...]
    classes: int
    data_range: tuple[float, float]  # synthetic inputs are uniform in this range


@dataclass(frozen=True)
class DeploySpec:
    name: str
    net: str


TRAIN_NETS = {
    "lenet": TrainSpec("LeNet", "examples/mnist/lenet_train_test.prototxt",
                       "examples/mnist/lenet_solver.prototxt", (64, 1, 28, 28), 10, (0.0, 1.0)),
    "cifar10_quick": TrainSpec("CIFAR10-quick", "examples/cifar10/cifar10_quick_train_test.prototxt",
                               "examples/cifar10/cifar10_quick_solver.prototxt", (100, 3, 32, 32), 10,
                               (-128.0, 128.0)),
}
DEPLOY_NETS = {
    "caffenet": DeploySpec("CaffeNet", "models/bvlc_reference_caffenet/deploy.prototxt"),
    "googlenet": DeploySpec("GoogLeNet", "models/bvlc_googlenet/deploy.prototxt"),
}
# the deploy-mode benchmarks' nets (benchmarks/opencv_dnn.py, threads.py) also take these
ALL_DEPLOY_NETS = {
    **DEPLOY_NETS,
    # written by benchmarks/resnet50.py (an absolute path: not one of the published files)
    "resnet50": DeploySpec("ResNet-50", str(ROOT / "benchmarks" / "ResNet-50-deploy.prototxt")),
    "flickr": DeploySpec("Flickr style", "models/finetune_flickr_style/deploy.prototxt"),  # gaussian fillers
}


def train_net_param(spec: TrainSpec, models: pathlib.Path) -> caffe_pb2.NetParameter:
    """The TRAIN net with every Data layer replaced by an Input layer (data, label) of the batch's shape."""
    param = prototxt.read_net_param(models / spec.net)
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    del out.layer[:]
    for layer in param.layer:
        if layer.type == "Data":
            if layer.include and all(rule.phase != caffe_pb2.TRAIN for rule in layer.include):
                continue
            replacement = caffe_pb2.LayerParameter(name=layer.name, type="Input", top=layer.top)
            replacement.input_param.shape.add(dim=spec.data_shape)
            replacement.input_param.shape.add(dim=spec.data_shape[:1])
            out.layer.add().CopyFrom(replacement)
        else:
            out.layer.add().CopyFrom(layer)
    out.state.phase = caffe_pb2.TRAIN
    return out


def solver_param(spec: TrainSpec, models: pathlib.Path) -> caffe_pb2.SolverParameter:
    """The published solver settings with the modified train net inline and no tests, display or snapshots."""
    param = prototxt.read_solver_param(models / spec.solver)
    param.ClearField("net")
    param.net_param.CopyFrom(train_net_param(spec, models))
    for name in ("test_iter", "test_interval", "display", "snapshot", "snapshot_prefix", "max_iter"):
        param.ClearField(name)
    param.solver_mode = caffe_pb2.SolverParameter.CPU
    return param


def deploy_net(spec: DeploySpec, models: pathlib.Path, seed: int = 0, batch: int | None = None,
               **options: object) -> recaffe.Net:
    """The deploy net in TEST, its weights N(0, 0.01²) and its input N(0, 1) (the deploy files
    have no fillers, and all-zero weights would make the timing unrepresentative); ``batch``
    replaces the input's first dimension; ``options`` go to ``recaffe.Net``."""
    net = recaffe.Net(str(models / spec.net), recaffe.TEST, **options)  # type: ignore[arg-type]
    if batch is not None:
        for index in net.input_blob_indices:
            blob = net.blob_list[index]
            blob.reshape((batch, *blob.shape[1:]))
        net.reshape()
    generator = torch.Generator().manual_seed(seed)
    for blob in net.params:
        blob.data.normal_(0.0, 0.01, generator=generator)
    for index in net.input_blob_indices:
        net.blob_list[index].data.normal_(generator=generator)
    set_batch_norm_statistics(net, seed)
    return net


def set_batch_norm_statistics(net: recaffe.Net, seed: int = 0) -> None:
    """Plausible BatchNorm statistics (positive variances, scale factor 1) and Scale weights near 1."""
    generator = torch.Generator().manual_seed(seed + 1)
    for layer in net.layers:
        if layer.type == "BatchNorm":
            mean, var, factor = (blob.data for blob in layer.blobs)
            mean.normal_(0.0, 0.1, generator=generator)
            var.uniform_(0.5, 1.5, generator=generator)
            factor.fill_(1.0)
        elif layer.type == "Scale" and layer.blobs:
            layer.blobs[0].data.normal_(1.0, 0.1, generator=generator)


def synthetic_batches(spec: TrainSpec, count: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` (data, label) batches: uniform data in ``spec.data_range``, labels in [0, classes)."""
    generator = torch.Generator().manual_seed(seed)
    low, high = spec.data_range
    batches = []
    for _ in range(count):
        data = torch.rand(spec.data_shape, generator=generator) * (high - low) + low
        label = torch.randint(spec.classes, spec.data_shape[:1], generator=generator)
        batches.append((data, label))
    return batches
