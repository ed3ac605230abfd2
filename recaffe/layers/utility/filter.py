from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs, Layer
from recaffe.registry import LAYERS


@LAYERS.register("Filter")
@final
class FilterLayer(Layer):
    """Keeps the items whose selector is non-zero: y_t = x_t[{n : s[n] != 0}] for every bottom t.

    Backward: dx_t[n] = dy_t[row of n] for kept items, 0 for dropped ones; no gradient to the
        selector (Caffe LOG(FATAL)s when asked for one).
    NOTE: as in Caffe, the reshape at set-up keeps all N items (so a net's tops have their full
        size before the first forward); every later reshape keeps only the selected items, which
        may be none: the tops then have 0 items and backward writes zeros.
    Params: none.
    Bottoms: x_1 (N, ...), ..., x_K (N, ...), selector s (N, 1, ...) (all dims but the first 1).
    Tops: y_1 (S, ...), ..., y_K (S, ...), S = number of non-zero selector entries.
    In place: no (the shapes differ).
    """

    min_bottom_blobs = 2
    min_top_blobs = 1

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        if len(top) != len(bottom) - 1:
            raise self.error(f"needs one top per filtered bottom (bottoms - 1 = {len(bottom) - 1}), "
                             f"got {len(top)} tops")
        self.first_reshape = True

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        selector = bottom[-1]
        if any(d != 1 for d in selector.shape[1:]):
            raise self.error(f"selector dims must be 1 except the first, got shape {selector.shape}")
        for i, blob in enumerate(bottom[:-1]):
            if blob.shape[0] != selector.shape[0]:
                raise self.error(f"bottom[{i}] has {blob.shape[0]} items but the selector has "
                                 f"{selector.shape[0]}; they must match")
        self.kept = torch.nonzero(selector.data.reshape(-1)).view(-1)  # (S,)
        num = selector.shape[0] if self.first_reshape else self.kept.numel()
        self.first_reshape = False
        for x, y in zip(bottom, top):
            y.reshape((num, *x.shape[1:]))

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        kept = self.kept.numel()
        for x, y in zip(bottom, top):
            torch.index_select(x.data, 0, self.kept, out=y.data.narrow(0, 0, kept))

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if propagate_down[-1]:
            raise self.error("cannot backpropagate to the selector; set propagate_down: false for it")
        for i, y in enumerate(top):
            if propagate_down[i]:
                dx = bottom[i].diff
                dx.zero_()
                dx.index_copy_(0, self.kept, y.diff)
