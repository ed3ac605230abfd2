from __future__ import annotations

import numpy as np
import pytest
import torch

from recaffe import rng
from recaffe.blob import Blob
from recaffe.io import prototxt
from recaffe.layer import Layer, LayerError
from recaffe.layers.data.dummy_data import LEGACY_DIMS
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS
from recaffe.testing.layer_case import LayerCase

LEGACY_TWO_TOPS = "num: 5 num: 5 channels: 3 height: 2 height: 1 width: 4 data_filler { value: 7 }"
GAUSSIAN_BETWEEN_CONSTANTS = """num: 5 channels: 3 height: 2 width: 4 data_filler { value: 7 }
    data_filler { type: "gaussian" mean: 3 std: 0.01 } data_filler { value: 9 }"""


def top_shapes(param: caffe_pb2.DummyDataParameter, tops: int) -> list[tuple[int, ...]]:
    if param.shape:
        return [tuple(param.shape[0 if len(param.shape) == 1 else i].dim) for i in range(tops)]
    return [tuple(getattr(param, name)[0 if len(getattr(param, name)) == 1 else i] for name in LEGACY_DIMS)
            for i in range(tops)]


class TestDummyData(LayerCase):
    layer_type = "DummyData"
    params = [
        "dummy_data_param { shape { dim: 2 dim: 3 } }",
        "dummy_data_param { num: 5 channels: 3 height: 2 width: 4 }",
        f"dummy_data_param {{ {LEGACY_TWO_TOPS} }}",
        """dummy_data_param { shape { dim: 4 } shape { dim: 1 dim: 2 dim: 3 } shape { }
            data_filler { value: -1.5 } data_filler { type: "constant" value: 2 } data_filler { } }""",
        "dummy_data_param { shape { dim: 3 dim: 2 } data_filler { value: 0.25 } }",
    ]
    bottom_shapes = []
    has_backward = False

    def top_count(self, param):
        p = param.dummy_data_param
        return max(len(p.shape), len(p.num), len(p.height), len(p.data_filler), 1)

    def reference(self, bottoms, blobs, param):
        p = param.dummy_data_param
        tops = self.top_count(param)
        values = [f.value for f in p.data_filler] or [0.0]
        return tuple(torch.full(shape, values[i if len(values) > 1 else 0], dtype=torch.float64)
                     for i, shape in enumerate(top_shapes(p, tops)))


def build(text: str, tops: int) -> tuple[Layer, list[Blob]]:
    param = prototxt.parse_text(f'name: "d" type: "DummyData" dummy_data_param {{ {text} }}',
                                caffe_pb2.LayerParameter())
    layer = LAYERS.get("DummyData")(param)
    top = [Blob() for _ in range(tops)]
    rng.set_random_seed(1701)
    layer.setup([], top)
    return layer, top


def test_legacy_dims_default_to_the_first_value() -> None:
    _, top = build(LEGACY_TWO_TOPS, 2)
    assert [t.shape for t in top] == [(5, 3, 2, 4), (5, 3, 1, 4)]
    assert all(bool((t.data == 7).all()) for t in top)


def test_constant_tops_fill_once_and_random_tops_refill_every_forward() -> None:
    layer, top = build(GAUSSIAN_BETWEEN_CONSTANTS, 3)
    assert bool((top[0].data == 7).all()) and bool((top[2].data == 9).all())
    assert bool((top[1].data == 0).all())  # not filled at setup
    assert rng.get_rng().rand() == rng.CaffeRNG(1701).rand()  # setup drew nothing
    rng.set_random_seed(1701)
    layer.run_forward([], top)
    first = top[1].data.clone()
    assert bool(((first - 3).abs() <= 0.1).all())
    top[0].data.fill_(-1)  # a constant top is never refilled
    layer.run_forward([], top)
    assert not torch.equal(first, top[1].data) and bool(((top[1].data - 3).abs() <= 0.1).all())
    assert bool((top[0].data == -1).all()) and bool((top[2].data == 9).all())


def test_refills_follow_top_order_and_caffes_filler_draws() -> None:
    text = """shape { dim: 3 dim: 4 } shape { dim: 2 dim: 5 } shape { dim: 2 }
        data_filler { type: "gaussian" std: 2 } data_filler { value: 4 } data_filler { type: "uniform" }"""
    layer, top = build(text, 3)
    rng.set_random_seed(5)
    layer.run_forward([], top)
    stream = rng.CaffeRNG(5)
    assert np.array_equal(top[0].data.numpy().ravel(), stream.gaussian(12, 0.0, 2.0))
    assert np.array_equal(top[2].data.numpy(), stream.uniform(2, 0.0, 1.0))
    assert bool((top[1].data == 4).all())


def test_one_random_filler_serves_every_top() -> None:
    layer, top = build('shape { dim: 2 } shape { dim: 3 } data_filler { type: "uniform" min: 1 max: 2 }', 2)
    rng.set_random_seed(9)
    layer.run_forward([], top)
    values = rng.CaffeRNG(9).uniform(5, 1.0, 2.0)
    assert np.array_equal(np.concatenate([top[0].data.numpy(), top[1].data.numpy()]), values)


@pytest.mark.parametrize("text, tops, message", [
    ("shape { dim: 2 } data_filler { } data_filler { }", 3, "data_filler must be given 0, 1 or 3"),
    ("shape { dim: 2 } shape { dim: 3 }", 3, "shape must be given once or once per top \\(3\\), got 2"),
    ("", 1, "shape must be given once or once per top \\(1\\), got 0"),
    ("shape { dim: 2 } num: 1 channels: 1 height: 1 width: 1", 1, "both shape and the legacy"),
    ("num: 5 height: 2 width: 4", 1, "channels must be given once or once per top \\(1\\), got 0"),
    ("num: 5 num: 5 num: 5 channels: 1 height: 1 width: 1", 2, "num must be given once or once per top"),
])
def test_counts_are_checked_as_caffe_does(text: str, tops: int, message: str) -> None:
    with pytest.raises(LayerError, match=message):
        build(text, tops)


def test_unknown_filler_type_fails_at_setup() -> None:
    with pytest.raises(LayerError, match="'d'.*unknown data_filler type 'nope'"):
        build('shape { dim: 2 } data_filler { type: "nope" }', 1)


def test_an_empty_top_cannot_be_filled() -> None:
    with pytest.raises(LayerError, match="cannot fill an empty blob"):
        build("shape { dim: 0 }", 1)
