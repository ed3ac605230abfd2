from __future__ import annotations

from collections.abc import Sequence
from typing import final

from recaffe.layer import Blobs, Layer
from recaffe.layers.utility.view import share_view
from recaffe.registry import LAYERS


@LAYERS.register("Slice")
@final
class SliceLayer(Layer):
    """Cuts the bottom along one axis into consecutive pieces, one per top.

    Forward: y_i = x[..., p_{i−1} : p_i, ...] along ``axis`` (p_0 = 0, p_K = x.shape[axis]).
    Backward: dx = the top diffs put back in place (each piece is written).
    Params (slice_param): axis=1 (negative counts from the end), or the deprecated slice_dim
        (non-negative only; not together with axis); slice_point (tops − 1 strictly increasing
        points; none: equal pieces, which must divide the axis).
    Bottoms: x (any shape).
    Tops: y_1 ... y_K (K >= 1). With one top, it shares the bottom's data and diff.
    In place: no (the shapes differ).
    """

    exact_num_bottom_blobs = 1
    min_top_blobs = 1

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.slice_param
        if p.HasField("axis") and p.HasField("slice_dim"):
            raise self.error("give either slice_param.axis or slice_param.slice_dim, not both")

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        p, x = self.param.slice_param, bottom[0]
        if p.HasField("slice_dim"):
            if p.slice_dim >= x.num_axes:
                raise self.error(f"slice_dim {p.slice_dim} out of range for a {x.num_axes}-D bottom "
                                 f"(it must satisfy 0 <= slice_dim < {x.num_axes})")
            self.axis = p.slice_dim
        else:
            self.axis = x.canonical_axis(p.axis)
        self.sizes = self._sizes(x.shape[self.axis], len(top))
        if len(top) == 1:
            share_view(x, top[0], x.shape)
            return
        shape = list(x.shape)
        for blob, size in zip(top, self.sizes):
            shape[self.axis] = size
            blob.reshape(shape)

    def _sizes(self, length: int, tops: int) -> list[int]:
        points = list(self.param.slice_param.slice_point)
        if not points:
            if length % tops:
                raise self.error(f"{tops} tops do not divide the slice axis {self.axis} "
                                 f"of size {length} evenly")
            return [length // tops] * tops
        if len(points) != tops - 1:
            raise self.error(f"{len(points)} slice_point values given for {tops} tops "
                             f"(need one fewer than the tops)")
        if tops > length:
            raise self.error(f"{tops} tops exceed the slice axis {self.axis} of size {length}")
        bounds = [0, *points, length]
        if any(b <= a for a, b in zip(bounds[:-2], bounds[1:-1])) or points[-1] > length:
            raise self.error(f"slice_point {points} must be strictly increasing, in (0, {length}]")
        return [b - a for a, b in zip(bounds[:-1], bounds[1:])]

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        if len(top) == 1:
            return  # the data is shared
        offset = 0
        for blob, size in zip(top, self.sizes):
            blob.data.copy_(bottom[0].data.narrow(self.axis, offset, size))
            offset += size

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0] or len(top) == 1:
            return
        offset = 0
        for blob, size in zip(top, self.sizes):
            bottom[0].diff.narrow(self.axis, offset, size).copy_(blob.diff)
            offset += size
