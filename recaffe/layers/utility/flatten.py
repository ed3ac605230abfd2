from __future__ import annotations

from typing import final

from recaffe.layer import Blobs
from recaffe.layers.utility.view import ViewLayer, share_view
from recaffe.registry import LAYERS


@LAYERS.register("Flatten")
@final
class FlattenLayer(ViewLayer):
    """Merges the axes ``axis..end_axis`` (inclusive) into one, without copying.

    Forward: y = x viewed with the merged shape (the top shares the bottom's data).
    Backward: dx = dy (the top shares the bottom's diff, so there is nothing to do).
    Params (flatten_param): axis=1, end_axis=-1 (negative values count from the end). As in Caffe,
        end_axis = axis - 1 inserts a singleton axis at ``axis``.
    Bottoms: x (d_0, ..., d_{n-1}).
    Tops: y (d_0, ..., d_{axis-1}, d_axis·…·d_end_axis, d_{end_axis+1}, ..., d_{n-1}).
    In place: no (Caffe CHECKs top != bottom).
    """

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        p, x = self.param.flatten_param, bottom[0]
        start, end = x.canonical_axis(p.axis), x.canonical_axis(p.end_axis)
        if end + 1 < start:
            raise self.error(f"flatten_param.end_axis {p.end_axis} (axis {end}) lies before "
                             f"flatten_param.axis {p.axis} (axis {start}) for bottom shape {x.shape}")
        share_view(x, top[0], (*x.shape[:start], x.count(start, end + 1), *x.shape[end + 1:]))
