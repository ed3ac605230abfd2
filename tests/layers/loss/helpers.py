"""Shared by the loss tests: random labels, Caffe's loss normalizer, building a layer by hand."""

from __future__ import annotations

import torch

from recaffe.blob import Blob
from recaffe.io import prototxt
from recaffe.layer import Layer
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS

LossParameter = caffe_pb2.LossParameter


def random_labels(shape: tuple[int, ...], num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """Integer class labels in [0, num_classes), stored as float64 like Caffe's label blobs."""
    return torch.randint(0, num_classes, shape, generator=generator).double()


def normalize(loss: torch.Tensor, param: caffe_pb2.LossParameter, default: int,
              outer: int, inner: int, valid: int) -> torch.Tensor:
    """``loss`` divided by the normalizer ``param`` asks for (``default`` when it names none)."""
    if param.HasField("normalization"):
        mode = param.normalization
    elif param.HasField("normalize"):
        mode = LossParameter.VALID if param.normalize else LossParameter.BATCH_SIZE
    else:
        mode = default
    count = {LossParameter.FULL: outer * inner, LossParameter.VALID: valid,
             LossParameter.BATCH_SIZE: outer, LossParameter.NONE: 1}[mode]
    return loss / max(count, 1)


def make_layer(
    layer_type: str, snippet: str, bottom: list[Blob], num_tops: int = 1
) -> tuple[Layer, list[Blob]]:
    """A layer of ``layer_type`` set up on ``bottom``; returns it with its tops."""
    param = prototxt.parse_text(f'name: "L" type: "{layer_type}" {snippet}', caffe_pb2.LayerParameter())
    layer = LAYERS.get(layer_type)(param, dtype=bottom[0].dtype)
    top = [Blob(dtype=bottom[0].dtype) for _ in range(num_tops)]
    layer.setup(bottom, top)
    return layer, top


def blob_of(values: torch.Tensor | list, dtype: torch.dtype = torch.float64) -> Blob:
    data = torch.as_tensor(values, dtype=dtype)
    blob = Blob(tuple(data.shape), dtype=dtype)
    blob.data.copy_(data)
    return blob
