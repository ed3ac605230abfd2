from __future__ import annotations

from collections.abc import Sequence
from typing import final

from recaffe import forks
from recaffe.layer import Blobs, Layer
from recaffe.registry import LAYERS


@LAYERS.register("Permute", dialect="ssd")
@final
class PermuteLayer(Layer):
    """SSD's Permute: reorders the axes of a blob (SSD turns N×C×H×W predictions into N×H×W×C).

    Forward: y = x.permute(order).
    Backward: dx = dy.permute(order⁻¹).
    Params (permute_param): order, repeated; the axes not named follow in increasing order (the
        fork completes ``order`` this way); each axis at most once. No order: identity.
    Bottoms: x (any shape). Tops: y, x's axes reordered.
    In place: no.
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1
    supports_in_place = False

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        given = list(forks.get_dialect("ssd").fork_param(self.param).permute_param.order)
        axes = bottom[0].num_axes
        for axis in given:
            if axis >= axes:
                raise self.error(f"permute_param.order {axis} is not an axis of the bottom "
                                 f"(shape {bottom[0].shape})")
        if len(set(given)) != len(given):
            raise self.error(f"permute_param.order {given} names an axis twice")
        self.order = given + [axis for axis in range(axes) if axis not in given]
        self.inverse = sorted(range(axes), key=self.order.__getitem__)

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        if bottom[0].num_axes != len(self.order):
            raise self.error(f"bottom has {bottom[0].num_axes} axes, set up with {len(self.order)}")
        top[0].reshape([bottom[0].shape[axis] for axis in self.order])

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        top[0].data.copy_(bottom[0].data.permute(self.order))

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if propagate_down[0]:
            bottom[0].diff.copy_(top[0].diff.permute(self.inverse))
