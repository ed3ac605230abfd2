from __future__ import annotations

from collections.abc import Sequence
from typing import final

from recaffe.layer import Blobs, Layer
from recaffe.registry import LAYERS


@LAYERS.register("Input")
@final
class InputLayer(Layer):
    """The net's inputs: tops the user fills (``net.blobs[name].data[...] = x``).

    Forward and backward do nothing; the tops keep whatever shape the user reshapes them to.
    Params (input_param): shape (0, 1, or one per top; a single shape applies to every top).
    Bottoms: none. Tops: >= 1, shaped by ``shape``.
    """

    exact_num_bottom_blobs = 0
    min_top_blobs = 1

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        shapes = self.param.input_param.shape
        if len(shapes) not in (0, 1, len(top)):
            raise self.error(
                f"input_param must give 0, 1 or {len(top)} (one per top) shapes, got {len(shapes)}"
            )
        for i, blob in enumerate(top):
            if shapes:
                blob.reshape(shapes[0 if len(shapes) == 1 else i].dim)

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        pass

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        pass

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        pass
