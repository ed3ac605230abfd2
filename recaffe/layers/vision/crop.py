from __future__ import annotations

from collections.abc import Sequence
from typing import final

from recaffe.layer import Blobs, Layer
from recaffe.registry import LAYERS


@LAYERS.register("Crop")
@final
class CropLayer(Layer):
    """Crops bottom[0] to the size of bottom[1] on the axes from ``axis`` on.

    Forward: top = bottom[0][..., o_a : o_a + S_a, ...] for every axis a ≥ axis, where S_a is
        bottom[1]'s size and o_a the offset; earlier axes are kept whole.
    Backward: bottom[0].diff = top.diff in the cropped region, 0 elsewhere. bottom[1] only gives
        a shape: its diff is never written (as in Caffe).
    Params (crop_param): axis=2 (may be negative); offset: none (all 0), one (used for every
        cropped axis) or one per cropped axis. Each crop must fit: offset + S_a ≤ bottom[0]'s size.
    Bottoms: x (any shape), reference (at least as many axes as x).
    Tops: y, x's shape with the cropped axes taken from the reference.
    In place: no.
    """

    exact_num_bottom_blobs = 2
    exact_num_top_blobs = 1

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.crop_param
        self.axis = bottom[0].canonical_axis(p.axis)
        cropped = bottom[0].num_axes - self.axis
        if len(p.offset) > 1 and len(p.offset) != cropped:
            raise self.error(f"number of offset values ({len(p.offset)}) must equal the number of "
                             f"dimensions from axis {self.axis} on ({cropped})")

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        offsets = list(self.param.crop_param.offset)
        shape, ref = bottom[0].shape, bottom[1].shape
        if len(ref) < len(shape):
            raise self.error(f"the reference bottom {ref} has fewer axes than the data {shape}")
        self.slices = [slice(None)] * self.axis
        for i in range(self.axis, len(shape)):
            offset = offsets[0] if len(offsets) == 1 else offsets[i - self.axis] if offsets else 0
            if shape[i] - offset < ref[i]:
                raise self.error(f"the crop for dimension {i} is out-of-bounds with size {ref[i]} "
                                 f"and offset {offset} (input size {shape[i]})")
            self.slices.append(slice(offset, offset + ref[i]))
        top[0].reshape((*shape[: self.axis], *ref[self.axis: len(shape)]))

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        top[0].data.copy_(bottom[0].data[tuple(self.slices)])

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if propagate_down[0]:
            bottom[0].diff.zero_()
            bottom[0].diff[tuple(self.slices)] = top[0].diff
