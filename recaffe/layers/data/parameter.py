from __future__ import annotations

from collections.abc import Sequence
from typing import final

from recaffe.layer import Blobs, Layer
from recaffe.registry import LAYERS


@LAYERS.register("Parameter")
@final
class ParameterLayer(Layer):
    """Exposes a learnable blob as a top, so other layers can take it as a bottom.

    Forward: the top shares the parameter's data and diff (no copy).
    Backward: nothing to do: whatever the consumers write into the top's diff is the parameter's
        diff (they assign it, as for any bottom, so it is overwritten rather than accumulated).
    Params (parameter_param): shape. The parameter starts at zero (there is no filler), unless
        loaded from a caffemodel or the prototxt.
    Blobs: p (shape).
    Bottoms: none.
    Tops: y (shape), sharing p's storage from the first forward on.
    In place: not applicable (no bottoms).
    """

    exact_num_bottom_blobs = 0
    exact_num_top_blobs = 1

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        shape = tuple(self.param.parameter_param.shape.dim)
        if not self.blobs:
            self.blobs = [self.new_blob(shape)]
        top[0].reshape(shape)
        if self.blobs[0].count() != top[0].count():
            raise self.error(f"parameter blob has shape {self.blobs[0].shape}, which does not fit "
                             f"parameter_param.shape {shape}")
        self.param_propagate_down = [True]

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        pass

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        top[0].share_data(self.blobs[0])
        top[0].share_diff(self.blobs[0])

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        pass  # the top's diff is the parameter's diff
