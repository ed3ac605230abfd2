from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import final

import numpy as np
import torch

from recaffe.layer import Blobs
from recaffe.layers.data.base import BaseDataLayer
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS

log = logging.getLogger(__name__)


@LAYERS.register("MemoryData")
@final
class MemoryDataLayer(BaseDataLayer):
    """Batches from arrays held in memory, cycling through them.

    ``reset(data, labels, n)`` serves the first ``n`` items of ``data`` viewed as (n, C, H, W),
    not transformed, and shared (not copied) when C-contiguous in the net's dtype; ``n`` must be a
    multiple of the batch size. ``add_datum_vector(datums)`` and ``add_mat_vector(images, labels)``
    transform each item with the DataTransformer first (in the calling thread). Each forward
    serves the next batch and wraps to the start after ``n`` items. ``set_batch_size`` changes
    the batch size between data sets. Backward: none.
    Params (memory_data_param): batch_size, channels, height, width (all required, positive).
        transform_param: applied by add_datum_vector / add_mat_vector only.
    Random draws at setup (main stream): the InitRand word, when mirror or TRAIN crop is set.
    Bottoms: none.
    Tops: data (batch_size, C, H, W); label (batch_size,) after setup but (batch_size, 1, 1, 1)
        after forward, as in Caffe.
    In place: not applicable.
    """

    exact_num_top_blobs = 2

    def data_layer_setup(self, top: Blobs) -> None:
        p = self.param.memory_data_param
        self.batch_size, self.item_shape = p.batch_size, (p.channels, p.height, p.width)
        if self.batch_size <= 0 or min(self.item_shape) <= 0:
            raise self.error(f"batch_size, channels, height, and width must be specified and positive "
                             f"in memory_data_param, got {self.batch_size} and {self.item_shape}")
        top[0].reshape((self.batch_size, *self.item_shape))
        top[1].reshape((self.batch_size,))
        self.data: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None
        self.n = self.pos = 0
        self.has_new_data = False

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        if self.data is None or self.labels is None:
            raise self.error(
                "MemoryData needs its data: call reset(), add_datum_vector() or add_mat_vector()")
        if self.pos + self.batch_size > self.n:
            raise self.error(
                f"a batch of {self.batch_size} from item {self.pos} runs past the {self.n} items")
        top[0].reshape((self.batch_size, *self.item_shape))
        top[1].reshape((self.batch_size, 1, 1, 1))
        top[0].data.copy_(self.data[self.pos : self.pos + self.batch_size])
        top[1].data.copy_(self.labels[self.pos : self.pos + self.batch_size].reshape(-1, 1, 1, 1))
        self.pos = (self.pos + self.batch_size) % self.n
        if self.pos == 0:
            self.has_new_data = False

    def reset(self, data: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, n: int) -> None:
        """Serve the first ``n`` items of ``data``/``labels`` (kept by reference, not transformed)."""
        if self.param.HasField("transform_param"):
            log.warning("%s does not transform array data on reset()", self.describe())
        self._serve(data, labels, n)

    def _serve(self, data: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, n: int) -> None:
        if n <= 0 or n % self.batch_size:
            raise self.error(f"n must be a positive multiple of the batch size {self.batch_size}, got {n}")
        self.data = self._rows(data, n, self.item_shape, "data")
        self.labels = self._rows(labels, n, (), "labels")
        self.n, self.pos = n, 0

    def add_datum_vector(self, datums: Sequence[caffe_pb2.Datum]) -> None:
        """Transform ``datums`` (their labels as labels) and serve them."""
        with self.data_errors():
            items = [self.transformer.transform_datum(d, f"datum {i}") for i, d in enumerate(datums)]
        self._add(items, [d.label for d in datums], "datum")

    def add_mat_vector(self, images: Sequence[np.ndarray], labels: Sequence[int]) -> None:
        """Transform (H, W, C) uint8 images (Caffe's cv::Mat vector) and serve them with ``labels``."""
        if len(images) != len(labels):
            raise self.error(f"got {len(images)} images but {len(labels)} labels")
        with self.data_errors():
            items = [self.transformer.transform_image(np.asarray(img)) for img in images]
        self._add(items, list(labels), "mat")

    def set_batch_size(self, new_size: int) -> None:
        if self.has_new_data:
            raise self.error("cannot change batch_size until the current data has been consumed")
        self.batch_size = self.positive_batch_size(new_size, "set_batch_size")

    def _add(self, items: list[np.ndarray], labels: list[int], what: str) -> None:
        if self.has_new_data:
            raise self.error(f"cannot add {what}s until the current data has been consumed")
        if not items or len(items) % self.batch_size:
            raise self.error(f"the number of {what}s added ({len(items)}) must be a positive multiple "
                             f"of the batch size {self.batch_size}")
        for i, item in enumerate(items):
            if item.shape != self.item_shape:
                raise self.error(f"{what} {i} transforms to shape {item.shape}, but memory_data_param "
                                 f"gives {self.item_shape}")
        self._serve(np.stack(items), np.asarray(labels, dtype=self.numpy_dtype), len(items))
        self.has_new_data = True

    def _rows(self, values: np.ndarray | torch.Tensor, n: int, shape: tuple[int, ...],
              what: str) -> torch.Tensor:
        if isinstance(values, torch.Tensor):
            tensor = values.detach().contiguous()
        else:  # shared when already C-contiguous in the net's dtype, as pycaffe requires
            array = np.ascontiguousarray(values, dtype=self.numpy_dtype)
            tensor = torch.from_numpy(array if array.flags.writeable else array.copy())
        needed = n * int(np.prod(shape, dtype=np.int64))
        if tensor.numel() < needed:
            raise self.error(f"{what} must hold at least {needed} values ({n} items of shape {shape}), "
                             f"got shape {tuple(tensor.shape)}")
        return tensor.reshape(-1)[:needed].reshape(n, *shape)
