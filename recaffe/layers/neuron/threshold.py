from __future__ import annotations

from typing import final

import torch

from recaffe.layer import Blobs
from recaffe.layers.neuron.base import NeuronLayer
from recaffe.registry import LAYERS


@LAYERS.register("Threshold")
@final
class ThresholdLayer(NeuronLayer):
    """Step function: 1 above the threshold, 0 elsewhere.

    Forward: y = 1 if x > threshold else 0
    Backward: not implemented in Caffe; asking for a bottom gradient raises an error.
    Params (threshold_param): threshold=0.
    Bottoms: x (any shape). Tops: y, shaped like x.
    In place: yes.
    """

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        y = top[0].data
        torch.gt(bottom[0].data, self.param.threshold_param.threshold, out=y)
