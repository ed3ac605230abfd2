from __future__ import annotations

import torch

from recaffe.testing.layer_case import LayerCase


class TestReLU(LayerCase):
    layer_type = "ReLU"
    params = ["", "relu_param { negative_slope: 0.1 }"]
    bottom_shapes = [(2, 3, 4, 5)]
    kink, kink_range = 0.0, 0.01
    in_place = True

    def reference(self, bottoms, blobs, param):
        (x,) = bottoms
        slope = param.relu_param.negative_slope
        return (torch.where(x > 0, x, slope * x),)
