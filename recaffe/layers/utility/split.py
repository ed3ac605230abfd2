from __future__ import annotations

from collections.abc import Sequence
from typing import final

from recaffe.layer import Blobs, Layer
from recaffe.registry import LAYERS


@LAYERS.register("Split")
@final
class SplitLayer(Layer):
    """Hands one blob to several consumers; the Net inserts these automatically.

    Forward: every top shares the bottom's data (no copy).
    Backward: bottom.diff = Σ_k top[k].diff.
    Bottoms: x (any shape). Tops: >= 1, each shaped like x.
    In place: no.
    """

    exact_num_bottom_blobs = 1
    min_top_blobs = 1

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        for blob in top:
            blob.reshape_like(bottom[0])
            blob.share_data(bottom[0])

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        pass  # the tops already share the bottom's data

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        diff = bottom[0].diff
        diff.copy_(top[0].diff)
        for blob in top[1:]:
            diff.add_(blob.diff)
