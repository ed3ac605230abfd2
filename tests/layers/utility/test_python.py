"""The Python layer type through the LayerCase harness, with a two-bottom layer written against
pycaffe's API in this module (nets with Python layers: tests/pycaffe/test_python_layer.py)."""

from __future__ import annotations

import caffe
from recaffe.testing.layer_case import LayerCase

MODULE = "tests.layers.utility.test_python"


class ScaledProduct(caffe.Layer):
    """top = k · a · b elementwise, k = float(param_str) (1 by default)."""

    def setup(self, bottom, top):
        if len(bottom) != 2:
            raise ValueError("ScaledProduct takes two bottoms")
        self.k = float(self.param_str or 1)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.k * bottom[0].data * bottom[1].data

    def backward(self, top, propagate_down, bottom):
        for i in (0, 1):
            if propagate_down[i]:
                bottom[i].diff[...] = self.k * top[0].diff * bottom[1 - i].data


class TestPython(LayerCase):
    layer_type = "Python"
    params = [
        f'python_param {{ module: "{MODULE}" layer: "ScaledProduct" }}',
        f'python_param {{ module: "{MODULE}" layer: "ScaledProduct" param_str: "-2.5" }}',
    ]
    bottom_shapes = [(2, 3, 4), (2, 3, 4)]

    def reference(self, bottoms, blobs, param):
        a, b = bottoms
        return (float(param.python_param.param_str or 1) * a * b,)
