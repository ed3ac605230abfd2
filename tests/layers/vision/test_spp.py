from __future__ import annotations

import math

import pytest
import torch

from recaffe.blob import Blob
from recaffe.io import prototxt
from recaffe.layer import LayerError
from recaffe.layers.vision.spp import SPPLayer
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_case import LayerCase
from tests.layers.vision.reference import naive_pool


def level_window(level: int, h: int, w: int) -> tuple[tuple[int, int], ...]:
    bins = 2**level
    kernel = (math.ceil(h / bins), math.ceil(w / bins))
    pad = ((kernel[0] * bins - h + 1) // 2, (kernel[1] * bins - w + 1) // 2)
    return kernel, kernel, pad


class TestSPP(LayerCase):
    layer_type = "SPP"
    bottom_shapes = [(1, 2, 9, 8)]
    stepsize = 1e-4  # MAX windows: nearby values are kinks
    params = ["spp_param { pyramid_height: 3 }", "spp_param { pyramid_height: 2 pool: AVE }",
              "spp_param { pyramid_height: 1 }"]

    def reference(self, bottoms, blobs, param):
        (x,) = bottoms
        p = param.spp_param
        levels = [naive_pool(x, *level_window(i, *x.shape[2:]), p.pool)[0] for i in range(p.pyramid_height)]
        if p.pyramid_height == 1:
            return (levels[0],)
        return (torch.cat([level.reshape(x.shape[0], -1) for level in levels], 1),)


def make(fields: str, shape: tuple[int, ...]) -> tuple[SPPLayer, list[Blob], list[Blob]]:
    param = prototxt.parse_text(fields, caffe_pb2.LayerParameter(name="spp", type="SPP"))
    layer = SPPLayer(param)
    bottom, top = [Blob(shape)], [Blob()]
    layer.setup(bottom, top)
    return layer, bottom, top


@pytest.mark.parametrize(("height", "shape", "channels"), [
    (3, (2, 3, 9, 8), 63),  # Caffe's TestSetup: 3 · (1 + 4 + 16)
    (5, (4, 3, 1024, 765), 1023),  # TestEqualOutputDims: 3 · 341
    (3, (10, 3, 7, 7), 63),  # TestEqualOutputDims2
])
def test_output_dims(height: int, shape: tuple[int, ...], channels: int) -> None:
    _, _, top = make(f"spp_param {{ pyramid_height: {height} }}", shape)
    assert top[0].shape == (shape[0], channels)


def test_height_one_keeps_the_pooling_shape() -> None:
    _, _, top = make("spp_param { pyramid_height: 1 }", (2, 3, 9, 8))
    assert top[0].shape == (2, 3, 1, 1)


def test_input_size_change_rebuilds_the_levels() -> None:
    layer, bottom, top = make("spp_param { pyramid_height: 2 }", (1, 2, 6, 6))
    bottom[0].reshape(1, 2, 9, 7)
    bottom[0].data.copy_(torch.randn(1, 2, 9, 7))
    layer.run_forward(bottom, top)
    expected = torch.cat([naive_pool(bottom[0].data, *level_window(i, 9, 7), 0)[0].reshape(1, -1)
                          for i in range(2)], 1)
    torch.testing.assert_close(top[0].data, expected)


@pytest.mark.parametrize(("fields", "shape", "message"), [
    ("spp_param { }", (1, 1, 4, 4), "pyramid_height must be >= 1"),
    ("spp_param { pyramid_height: 2 }", (1, 1, 4), "4 axes"),
    # Level 1 on a single row: kernel 1, pad 1, which Pooling refuses (pad < kernel).
    ("spp_param { pyramid_height: 2 }", (1, 1, 1, 4), r"'spp/level1' \(Pooling\): pad"),
])
def test_invalid_inputs_are_refused(fields: str, shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(LayerError, match=message):
        make(fields, shape)
