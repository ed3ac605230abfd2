from __future__ import annotations

import math
from typing import final

from recaffe.layer import Blobs
from recaffe.layers.utility.view import ViewLayer, share_view
from recaffe.registry import LAYERS


@LAYERS.register("Reshape")
@final
class ReshapeLayer(ViewLayer):
    """Gives the bottom a new shape with the same count, without copying.

    Forward: y = x viewed with the new shape (the top shares the bottom's data).
    Backward: dx = dy (the top shares the bottom's diff, so there is nothing to do).
    Params (reshape_param): shape (dims; 0 copies the bottom dim at the same position relative to
        ``axis``, -1 is inferred from the count, at most one -1), axis=0 (first bottom axis
        replaced; negative counts from the end, -1 meaning "after the last axis"), num_axes=-1
        (number of bottom axes replaced; -1 = all from ``axis`` on, 0 inserts the new dims).
    Bottoms: x (any shape).
    Tops: y, x.shape[:axis] + shape + x.shape[axis + num_axes:].
    In place: no (Caffe CHECKs top != bottom).
    """

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        dims = list(self.param.reshape_param.shape.dim)
        if any(d < -1 for d in dims):
            raise self.error(f"reshape_param.shape dims must be >= -1, got {dims}")
        if dims.count(-1) > 1:
            raise self.error(f"reshape_param.shape may contain at most one -1 (inferred) dim, got {dims}")
        self.copy_axes = [i for i, d in enumerate(dims) if d == 0]
        self.inferred_axis = dims.index(-1) if -1 in dims else None

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        p, x = self.param.reshape_param, bottom[0]
        start = p.axis if p.axis >= 0 else x.num_axes + p.axis + 1
        if not 0 <= start <= x.num_axes:
            raise self.error(f"reshape_param.axis {p.axis} out of range for a {x.num_axes}-D bottom")
        if p.num_axes < -1:
            raise self.error(f"reshape_param.num_axes must be >= 0, or -1 for all, got {p.num_axes}")
        end = x.num_axes if p.num_axes == -1 else start + p.num_axes
        if end > x.num_axes:
            raise self.error(f"reshape_param.axis + num_axes = {end} out of range for a "
                             f"{x.num_axes}-D bottom")
        new = list(p.shape.dim)
        for i in self.copy_axes:
            if start + i >= x.num_axes:
                raise self.error(f"reshape_param.shape has a 0 at position {i}, but the bottom "
                                 f"{x.shape} has no axis {start + i} to copy")
            new[i] = x.shape[start + i]
        if self.inferred_axis is not None:
            known = x.count(0, start) * x.count(end) * math.prod(d for d in new if d != -1)
            if known == 0 or x.count() % known:
                raise self.error(f"bottom count ({x.count()}) must be divisible by the product of "
                                 f"the specified dimensions ({known})")
            new[self.inferred_axis] = x.count() // known
        shape = (*x.shape[:start], *new, *x.shape[end:])
        count = math.prod(shape)
        if count != x.count():
            raise self.error(f"output count must match input count: top shape {shape} has {count} "
                             f"elements, bottom {x.shape} has {x.count()}")
        share_view(x, top[0], shape)
