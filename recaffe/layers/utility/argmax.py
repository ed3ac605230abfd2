from __future__ import annotations

from typing import final

import torch

from recaffe.layer import Blobs, Layer
from recaffe.registry import LAYERS


@LAYERS.register("ArgMax")
@final
class ArgMaxLayer(Layer):
    """The indices (and optionally the values) of the ``top_k`` largest entries.

    Forward: without ``axis``, per item n over its C·H·W entries: y[n, 0, j] = index of the j-th
        largest, and with ``out_max_val`` also y[n, 1, j] = its value. With ``axis``: y holds the
        top_k values (``out_max_val``) or else their indices along that axis. Indices are floats.
        NOTE: ties rank the higher index first (Caffe sorts (value, index) pairs descending).
    Backward: none (Caffe: NOT_IMPLEMENTED).
    Params (argmax_param): out_max_val=false, top_k=1 (1 <= top_k <= the searched size),
        axis (unset: search all of C·H·W per item; negative counts from the end).
    Bottoms: x (N, ...).
    Tops: without axis (N, 1, top_k), or (N, 2, top_k) with out_max_val, padded with trailing 1s
        to x's number of axes; with axis, x's shape with shape[axis] = top_k.
    In place: no (the shapes differ).
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.argmax_param
        if p.top_k < 1:
            raise self.error(f"argmax_param.top_k must be >= 1, got {p.top_k}")
        self.axis = bottom[0].canonical_axis(p.axis) if p.HasField("axis") else None

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        p, x = self.param.argmax_param, bottom[0]
        if self.axis is None:
            if p.top_k > x.count(1):
                raise self.error(f"argmax_param.top_k {p.top_k} exceeds the {x.count(1)} entries "
                                 f"per item of bottom shape {x.shape}")
            shape = [1] * max(3, x.num_axes)
            shape[0], shape[1], shape[2] = x.shape[0], 2 if p.out_max_val else 1, p.top_k
        else:
            if p.top_k > x.shape[self.axis]:
                raise self.error(f"argmax_param.top_k {p.top_k} exceeds dim {x.shape[self.axis]} of "
                                 f"axis {self.axis} of bottom shape {x.shape}")
            shape = list(x.shape)
            shape[self.axis] = p.top_k
        top[0].reshape(shape)

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        p, x = self.param.argmax_param, bottom[0]
        if self.axis is None:
            values, indices = _top_k(x.data.reshape(x.shape[0], -1), p.top_k, 1)  # (N, k) each
            y = top[0].data.view(x.shape[0], -1, p.top_k)  # (N, 1 or 2, k)
            y[:, 0].copy_(indices)
            if p.out_max_val:
                y[:, 1].copy_(values)
        else:
            values, indices = _top_k(x.data, p.top_k, self.axis)
            top[0].data.copy_(values if p.out_max_val else indices)


def _top_k(x: torch.Tensor, k: int, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest entries along ``axis`` and their indices, equal values by descending index.

    Searching the reversed axis makes the first maximum (torch's rule for max) or the first of
    equal values in a stable sort the one with the highest original index: Caffe's order.
    """
    flipped = x.flip(axis)
    if k == 1:
        values, order = flipped.max(dim=axis, keepdim=True)
    else:
        values, order = torch.sort(flipped, dim=axis, descending=True, stable=True)
        values, order = values.narrow(axis, 0, k), order.narrow(axis, 0, k)
    return values, ((x.shape[axis] - 1) - order).to(x.dtype)
