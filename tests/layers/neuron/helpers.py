"""Small drivers for the value tests of element-wise layers (ports of Caffe's test_neuron_layer)."""

from __future__ import annotations

import torch

from recaffe import rng
from recaffe.blob import Blob
from recaffe.io import prototxt
from recaffe.layer import Layer
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS


def caffe_input(shape: tuple[int, ...] = (2, 3, 4, 5), std: float = 1.0) -> torch.Tensor:
    """The bottom Caffe's neuron tests use: a Gaussian filler after set_random_seed(1701)."""
    count = int(torch.Size(shape).numel())
    return torch.from_numpy(rng.CaffeRNG(1701).gaussian(count, 0.0, std)).view(shape)


def run_forward(
    layer_type: str, snippet: str, x: torch.Tensor, *, in_place: bool = False
) -> tuple[Layer, Blob, Blob]:
    """Set up the layer on a bottom holding ``x`` (in its dtype) and run one forward.

    The random stream is seeded first, so layers with fillers or draws are reproducible.
    """
    param = prototxt.parse_text(f'name: "L" type: "{layer_type}" {snippet}', caffe_pb2.LayerParameter())
    if not param.HasField("phase"):
        param.phase = caffe_pb2.TRAIN
    bottom = Blob(x.shape, dtype=x.dtype)
    bottom.data.copy_(x)
    top = bottom if in_place else Blob(dtype=x.dtype)
    layer = LAYERS.get(layer_type)(param, dtype=x.dtype)
    rng.set_random_seed(1701)
    layer.setup([bottom], [top])
    layer.run_forward([bottom], [top])
    return layer, bottom, top


def run_backward(layer: Layer, bottom: Blob, top: Blob, dy: torch.Tensor) -> torch.Tensor:
    """Backward with top diff ``dy``; returns a copy of the bottom diff."""
    top.diff.copy_(dy)
    layer.run_backward([top], [True], [bottom])
    return bottom.diff.clone()


def ulp_distance(got: torch.Tensor, want: torch.Tensor) -> int:
    """The largest distance in float32 ulps between two tensors (Caffe's EXPECT_FLOAT_EQ allows 4)."""
    def ordered(t: torch.Tensor) -> torch.Tensor:
        bits = t.float().contiguous().view(torch.int32).long()
        return torch.where(bits < 0, -(bits & 0x7FFFFFFF), bits)
    return int((ordered(got) - ordered(want)).abs().max())
