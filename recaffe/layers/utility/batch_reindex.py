from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs, Layer
from recaffe.registry import LAYERS


@LAYERS.register("BatchReindex")
@final
class BatchReindexLayer(Layer):
    """Gathers items of the batch by index: y[i] = x[index[i]] (repeats and omissions allowed).

    Backward: dx[n] = Σ_{i : index[i] = n} dy[i] (zero for items never picked); no gradient to
        the indices (Caffe CHECK-fails when asked for one).
    Params: none.
    Bottoms: x (N, ...); index (M,), floats in [0, N), truncated to integers as C++ casts do.
    Tops: y (M, ...).
    In place: no (the shapes differ).
    """

    exact_num_bottom_blobs = 2
    exact_num_top_blobs = 1

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        if bottom[1].num_axes != 1:
            raise self.error(f"the index bottom must be 1-D, got shape {bottom[1].shape}")
        top[0].reshape((bottom[1].shape[0], *bottom[0].shape[1:]))

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        torch.index_select(bottom[0].data, 0, self._indices(bottom), out=top[0].data)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if propagate_down[1]:
            raise self.error("cannot backpropagate to the indices; set propagate_down: false for them")
        if propagate_down[0]:
            dx = bottom[0].diff
            dx.zero_()
            dx.index_add_(0, self._indices(bottom), top[0].diff)

    def _indices(self, bottom: Blobs) -> torch.Tensor:
        """The index bottom as int64, checked to lie in [0, N) like Caffe's check_batch_reindex."""
        index, num = bottom[1].data, bottom[0].shape[0]
        bad = (index < 0) | (index >= num)
        if bool(bad.any()):
            value = float(index[bad.nonzero()[0, 0]])
            raise self.error(f"index {value} in bottom[1] is outside the batch [0, {num})")
        return index.long()
