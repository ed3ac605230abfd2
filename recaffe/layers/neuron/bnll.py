from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs
from recaffe.layers.neuron.base import NeuronLayer
from recaffe.registry import LAYERS

BNLL_THRESHOLD = 50.0  # Caffe clamps the exponent of the gradient here


@LAYERS.register("BNLL")
@final
class BNLLLayer(NeuronLayer):
    """Binomial normal log-likelihood (softplus), in the form that cannot overflow.

    Forward: y = x + log(1 + e^−x) if x > 0, else log(1 + e^x)   (= max(x, 0) + log1p(e^−|x|))
    Backward: dx = dy · e^m / (e^m + 1), m = min(x, 50)
    Params: none.
    Bottoms: x (any shape). Tops: y, shaped like x.
    In place: unsafe (as in Caffe): backward reads x, which an in-place forward overwrote.
    """

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        x = bottom[0].data
        soft = torch.abs(x).neg_().exp_().log1p_()
        torch.clamp(x, min=0, out=top[0].data).add_(soft)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        e = torch.clamp(bottom[0].data, max=BNLL_THRESHOLD).exp_()
        torch.mul(top[0].diff, e, out=bottom[0].diff).div_(e.add_(1))
