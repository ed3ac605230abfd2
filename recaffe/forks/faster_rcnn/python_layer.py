"""The base of recaffe's built-in stand-ins for py-faster-rcnn's Python layers.

A stand-in is a ``caffe.Layer`` (so ``net.layers[i]`` is the object itself, and methods such as
RoIDataLayer's ``set_roidb`` are there, as with py-faster-rcnn's own classes) computing on the
blobs' torch tensors. ``param_str`` is read as py-faster-rcnn reads it (a YAML mapping such as
``'feat_stride': 16``; recaffe reads the Python-literal subset py-faster-rcnn's prototxts use).
Like py-faster-rcnn's layers, they size their tops in ``forward`` and pass no gradients.
"""

from __future__ import annotations

import abc
import ast
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from recaffe import rng
from recaffe.blob import Blob as NativeBlob
from recaffe.pylayer import base
from recaffe.pylayer.blobs import Blob


def parse_param_str(text: str, layer: str) -> dict[str, Any]:
    """``'feat_stride': 16, 'scales': [8, 16]`` (a YAML flow mapping without braces, or with
    them) as a dict; an error naming the layer when it is not one."""
    body = text.strip()
    if not body:
        return {}
    source = body if body.startswith("{") else "{" + body + "}"
    try:
        value = ast.literal_eval(source)
    except (ValueError, SyntaxError) as e:
        raise ValueError(f"layer {layer!r}: python_param.param_str {text!r} is not a mapping such as "
                         f"\"'feat_stride': 16\" ({e})") from e
    if not isinstance(value, dict):
        raise ValueError(f"layer {layer!r}: python_param.param_str {text!r} is not a mapping")
    return value


class BuiltinPythonLayer(base.Layer, abc.ABC):
    """A stand-in: ``layer_setup`` and ``run`` see recaffe blobs (torch tensors)."""

    required: tuple[str, ...] = ()
    num_bottoms: int = -1
    num_tops: tuple[int, int] = (1, 1)

    def setup(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        self.layer_name = self._layer_param.name
        self.params = parse_param_str(self.param_str, self.layer_name)
        missing = [key for key in self.required if key not in self.params]
        if missing:
            raise ValueError(f"layer {self.layer_name!r}: python_param.param_str {self.param_str!r} "
                             f"lacks {', '.join(repr(m) for m in missing)}")
        if self.num_bottoms >= 0 and len(bottom) != self.num_bottoms:
            raise ValueError(f"layer {self.layer_name!r} ({type(self).__name__}) takes "
                             f"{self.num_bottoms} bottoms, got {len(bottom)}")
        low, high = self.num_tops
        if not low <= len(top) <= high:
            wanted = str(low) if low == high else f"{low} to {high}"
            raise ValueError(f"layer {self.layer_name!r} ({type(self).__name__}) produces {wanted} tops, "
                             f"got {len(top)}")
        # py-faster-rcnn samples with numpy's global stream; a stand-in has its own, seeded by the
        # seed of Caffe's stream (the solver's random_seed) and the layer's name, without drawing
        # from that stream (the fillers of later layers get Caffe's numbers), so runs repeat.
        self.random = np.random.RandomState([rng.get_rng().seed, zlib.crc32(self.layer_name.encode())])
        self.layer_setup(base._unwrap(bottom), base._unwrap(top))

    def reshape(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        """Tops are sized in forward, as py-faster-rcnn's layers do."""

    def forward(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        self.run(base._unwrap(bottom), base._unwrap(top))

    def backward(self, top: Sequence[Blob], propagate_down: Sequence[bool], bottom: Sequence[Blob]) -> None:
        """No gradients, as py-faster-rcnn's layers."""

    @abc.abstractmethod
    def layer_setup(self, bottom: list[NativeBlob], top: list[NativeBlob]) -> None:
        """Read ``self.params``, give the tops a first shape."""

    @abc.abstractmethod
    def run(self, bottom: list[NativeBlob], top: list[NativeBlob]) -> None:
        """Forward: size and fill the tops."""

    def fail(self, message: str) -> ValueError:
        return ValueError(f"layer {self.layer_name!r} ({type(self).__name__}): {message}")


def put(blob: NativeBlob, value: Any) -> None:
    """Reshape ``blob`` to ``value``'s shape and copy it in (float32, on the blob's device)."""
    tensor = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
    blob.reshape(*tensor.shape)
    blob.data.copy_(tensor.to(dtype=blob.data.dtype, device=blob.data.device))
