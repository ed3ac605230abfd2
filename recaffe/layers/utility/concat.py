from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs, Layer
from recaffe.layers.utility.view import share_view
from recaffe.math import pieces
from recaffe.registry import LAYERS
from recaffe.workers import SERIAL, Workers


@LAYERS.register("Concat")
@final
class ConcatLayer(Layer):
    """Joins the bottoms along one axis: y = [x_1, x_2, ..., x_K] along ``axis``.

    Backward: dx_i = the slice of dy that x_i filled.
    Params (concat_param): axis=1 (negative counts from the end), or the deprecated concat_dim
        (non-negative only; not together with axis).
    Bottoms: x_1 ... x_K (K >= 1), equal in every dim but the concatenation axis.
    Tops: y, with the concatenation axis summed. With one bottom, y shares its data and diff.
    In place: no (the shapes differ).
    """

    min_bottom_blobs = 1
    exact_num_top_blobs = 1
    shares_work = True

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.concat_param
        if p.HasField("axis") and p.HasField("concat_dim"):
            raise self.error("give either concat_param.axis or concat_param.concat_dim, not both")

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        p, first = self.param.concat_param, bottom[0]
        if p.HasField("concat_dim"):
            if p.concat_dim >= first.num_axes:
                raise self.error(f"concat_dim {p.concat_dim} out of range for a {first.num_axes}-D "
                                 f"bottom (it must satisfy 0 <= concat_dim < {first.num_axes})")
            self.axis = p.concat_dim
        else:
            self.axis = first.canonical_axis(p.axis)
        shape = list(first.shape)
        for i, blob in enumerate(bottom[1:], start=1):
            if blob.num_axes != first.num_axes:
                raise self.error(f"all bottoms must have the same number of axes: bottom[0] is "
                                 f"{first.shape}, bottom[{i}] is {blob.shape}")
            if any(d != e for j, (d, e) in enumerate(zip(first.shape, blob.shape)) if j != self.axis):
                raise self.error(f"all bottoms must have the same shape except on axis {self.axis}: "
                                 f"bottom[0] is {first.shape}, bottom[{i}] is {blob.shape}")
            shape[self.axis] += blob.shape[self.axis]
        if len(bottom) == 1:
            share_view(first, top[0], shape)
        else:
            top[0].reshape(shape)

    def forward(self, bottom: Blobs, top: Blobs, workers: Workers = SERIAL) -> None:
        if len(bottom) == 1:
            return
        xs = [blob.strided_data() for blob in bottom]
        if all(x.is_contiguous() for x in xs):
            torch.cat(xs, dim=self.axis, out=top[0].data)
        else:  # held in another layout (channels-last after convolutions): join them in it
            top[0].adopt_data(pieces.concatenate(workers, xs, self.axis))

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if len(bottom) == 1:
            return  # the diff is shared
        dy = top[0].strided_diff()
        offset = 0
        for i, blob in enumerate(bottom):
            size = blob.shape[self.axis]
            if propagate_down[i]:
                part = dy.narrow(self.axis, offset, size)
                if dy.is_contiguous():
                    blob.diff.copy_(part)
                else:  # a copy in the top's layout, not a view of the top's diff
                    blob.adopt_diff(part.clone(memory_format=torch.preserve_format))
            offset += size
