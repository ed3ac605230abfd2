"""Helpers for the published fork nets in tests/fixtures/forks: a smaller input, trained-looking seeded
weights, the fork's caffemodel for OpenCV dnn, and the blob-by-blob comparison."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import numpy as np
import torch

import recaffe
from recaffe import forks
from recaffe.io import prototxt


def with_input(path: pathlib.Path, dialect: str, size: tuple[int, int], out: pathlib.Path,
               batch: int | None = None) -> pathlib.Path:
    """The net of ``path`` (read in ``dialect``) with its input's height and width set to ``size`` (and
    its batch size to ``batch``, if given); the layers are unchanged."""
    fork = forks.get_dialect(dialect)
    net = prototxt.parse_text(path.read_text(), fork.net_parameter(), str(path))
    dims = net.input_shape[0].dim if net.input_shape else net.input_dim
    dims[2], dims[3] = size
    if batch is not None:
        dims[0] = batch
    out.write_text(prototxt.to_text(net))
    return out


def seeded_net(path: pathlib.Path, seed: int = 1) -> recaffe.Net:
    """The net with seeded weights a trained net could have (published deploy nets name no fillers, so
    Caffe's would leave them 0): He-scaled gaussian convolution/InnerProduct weights, small biases,
    BatchNorm mean/variance, Scale factors, PSPNet/SegNet BN factors."""
    recaffe.set_random_seed(seed)
    net = recaffe.Net(str(path), recaffe.TEST)
    generator = torch.Generator().manual_seed(seed)

    def uniform(blob: recaffe.Blob, low: float, high: float) -> None:
        blob.data.copy_(torch.rand(blob.shape, generator=generator) * (high - low) + low)

    for layer in net.layers:
        if layer.type in ("Convolution", "InnerProduct", "Deconvolution"):
            weight = layer.blobs[0]
            fan_in = weight.count() // weight.shape[0]
            weight.data.copy_(torch.randn(weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
            for bias in layer.blobs[1:]:
                uniform(bias, -0.1, 0.1)
        elif layer.type == "BatchNorm":
            uniform(layer.blobs[0], -0.1, 0.1)
            uniform(layer.blobs[1], 0.5, 1.5)
            layer.blobs[2].data.fill_(1)
        elif layer.type == "Scale":
            uniform(layer.blobs[0], 0.5, 1.5)
        elif layer.type == "BN":  # PSPNet's (slope, bias, mean, variance) or SegNet's (scale, shift)
            uniform(layer.blobs[0], 0.5, 1.5)
            uniform(layer.blobs[1], -0.1, 0.1)
            if len(layer.blobs) == 4:
                uniform(layer.blobs[2], -0.1, 0.1)
                uniform(layer.blobs[3], 0.5, 1.5)
    return net


def opencv_blobs(net: recaffe.Net, path: pathlib.Path, dialect: str, x: np.ndarray,
                 names: Sequence[str], tmp: pathlib.Path) -> dict[str, np.ndarray]:
    """OpenCV dnn's outputs of ``names`` for input ``x``, with ``net``'s weights written as the fork's
    caffemodel; ``net`` runs forward on ``x`` too."""
    import cv2

    weights = tmp / (path.stem + ".caffemodel")
    prototxt.write_binary(weights, forks.get_dialect(dialect).raise_net(net.to_proto()))
    net.blobs[net.inputs[0]].data.copy_(torch.from_numpy(x))
    net.forward()
    theirs = cv2.dnn.readNetFromCaffe(str(path), str(weights))
    theirs.setInput(x)
    return dict(zip(names, theirs.forward(list(names))))


def max_abs_diffs(net: recaffe.Net, theirs: dict[str, np.ndarray]) -> dict[str, float]:
    """Per blob: max |recaffe − OpenCV| divided by max(1, max |recaffe|) (shapes must agree in count)."""
    out = {}
    for name, value in theirs.items():
        mine = net.blobs[name].data.numpy()
        assert value.size == mine.size, f"{name}: OpenCV gives {value.shape}, recaffe {mine.shape}"
        scale = max(1.0, float(np.abs(mine).max()))
        out[name] = float(np.abs(value.reshape(mine.shape) - mine).max()) / scale
    return out
