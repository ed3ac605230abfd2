from __future__ import annotations

from collections.abc import Sequence
from typing import final

from recaffe.layer import Blobs, Layer
from recaffe.registry import LAYERS


@LAYERS.register("Silence")
@final
class SilenceLayer(Layer):
    """Consumes blobs nobody else reads, so the net does not print them as outputs.

    Forward: nothing.
    Backward: dx_i = 0 for every bottom asked for a gradient.
    Params: none.
    Bottoms: x_1, ..., x_K (K >= 1, any shapes).
    Tops: none.
    In place: not applicable (no tops).
    """

    min_bottom_blobs = 1
    exact_num_top_blobs = 0

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        pass

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        pass

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        for i, blob in enumerate(bottom):
            if propagate_down[i]:
                blob.diff.zero_()
