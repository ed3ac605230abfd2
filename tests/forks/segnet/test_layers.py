"""SegNet's Upsample, BN and Dropout sample_weights_test against references written from the fork's
C++ (alexgkendall/caffe-segnet: upsample_layer.cpp, bn_layer.cpp, dropout_layer.cpp)."""

from __future__ import annotations

from typing import Any, cast

import pytest
import torch
import torch.nn.functional as F

from recaffe import forks, rng
from recaffe.blob import Blob
from recaffe.io import prototxt
from recaffe.layer import LayerError
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS
from recaffe.testing.layer_case import LayerCase, Tensors

SEGNET = forks.get_dialect("segnet")


def fork(param: caffe_pb2.LayerParameter) -> Any:
    return SEGNET.fork_param(param)


def pooled(shape: tuple[int, ...], generator: torch.Generator) -> list[torch.Tensor]:
    """A 2×2/2 max pooling (ceil) of random data and its mask (flat h·W + w indices), as Caffe's Pooling."""
    values, index = F.max_pool2d(torch.randn(shape, generator=generator, dtype=torch.float64), 2, 2,
                                 ceil_mode=True, return_indices=True)
    return [values, index.double()]


def reference_upsample(x: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """upsample_layer.cpp: top_data[mask[i]] = bottom_data[i] per (n, c) plane, zero elsewhere."""
    n, c = x.shape[:2]
    flat = torch.zeros(n * c, size[0] * size[1], dtype=x.dtype)
    return flat.scatter(1, mask.reshape(n * c, -1).long(), x.reshape(n * c, -1)).view(n, c, *size)


class TestUpsample(LayerCase):
    layer_type = "Upsample"
    dialect = "segnet"
    params = [
        "upsample_param { scale: 2 }",
        "",  # scale defaults to 2
        "upsample_param { scale: 2 pad_out_h: true pad_out_w: true }",
        "upsample_param { upsample_h: 5 upsample_w: 7 }",
        "upsample_param { scale_h: 2 scale_w: 2 pad_out_w: true }",
    ]
    bottom_shapes = [(2, 3, 5, 7)]  # the pooling's input; the bottoms are its 3×4 top and mask
    check_bottoms = [0]

    def make_bottoms(self, param: caffe_pb2.LayerParameter, generator: torch.Generator) -> list[torch.Tensor]:
        return pooled(self.bottom_shapes[0], generator)

    def reference(self, bottoms: Tensors, blobs: Tensors, param: caffe_pb2.LayerParameter) -> Tensors:
        p = fork(param).upsample_param
        x, mask = bottoms
        if p.HasField("upsample_h"):
            size = (p.upsample_h, p.upsample_w)
        else:
            scale = (p.scale_h, p.scale_w) if p.HasField("scale_h") else (p.scale, p.scale)
            size = (x.shape[2] * scale[0] - p.pad_out_h, x.shape[3] * scale[1] - p.pad_out_w)
        return (reference_upsample(x, mask.detach(), size),)


def build(layer_type: str, snippet: str, bottoms: list[torch.Tensor],
          phase: caffe_pb2.Phase.ValueType = caffe_pb2.TEST,
          tops: int = 1) -> tuple[Any, list[Blob], list[Blob]]:
    param = SEGNET.lower_layer(prototxt.parse_text(f'name: "L" type: "{layer_type}" {snippet}',
                                                   SEGNET.layer_parameter()))
    param.phase = phase
    layer = LAYERS.get(layer_type, "segnet")(param, dtype=bottoms[0].dtype)
    bottom = [Blob(x.shape, dtype=x.dtype) for x in bottoms]
    for blob, x in zip(bottom, bottoms):
        blob.data.copy_(x)
    top = [Blob(dtype=bottoms[0].dtype) for _ in range(tops)]
    layer.setup(bottom, top)
    layer.run_forward(bottom, top)
    return layer, bottom, top


def test_upsample_inverts_max_pooling_positions_and_routes_the_gradient_back() -> None:
    x = torch.randn(2, 3, 6, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    values, index = F.max_pool2d(x, 2, 2, return_indices=True)
    _, bottom, top = build("Upsample", "upsample_param { upsample_h: 6 upsample_w: 8 }",
                           [values, index.double()])
    torch.testing.assert_close(top[0].data, F.max_unpool2d(values, index, [2, 2], [2, 2], output_size=(6, 8)))
    top[0].diff.copy_(x)
    bottom[1].diff.fill_(7.0)
    layer = build("Upsample", "upsample_param { scale: 2 }", [values, index.double()])[0]
    layer.run_backward(top, [True, True], bottom)
    torch.testing.assert_close(bottom[0].diff, values)  # each input takes the diff where it went
    assert bool((bottom[1].diff == 7.0).all())  # the mask's diff is left alone, as in the fork


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("upsample_param { scale: 2 scale_h: 2 scale_w: 2 }", "upsample_h and upsample_w"),
        ("upsample_param { scale_h: 2 }", "upsample_h and upsample_w"),
        ("upsample_param { upsample_h: 1 upsample_w: 4 }", "must be > 1"),
        ("upsample_param { scale: 1 }", "must be > 1"),
        ("upsample_param { scale: 3 pad_out_h: true }", "pad_out_h needs a scale of 2"),
        ("upsample_param { upsample_h: 3 upsample_w: 3 }", "outside the 9 positions"),
    ],
)
def test_upsample_errors(snippet: str, message: str) -> None:
    values, index = pooled((1, 2, 6, 6), torch.Generator().manual_seed(1))
    with pytest.raises(LayerError, match=message):
        build("Upsample", snippet, [values, index])


def test_upsample_mask_must_match_the_input() -> None:
    with pytest.raises(LayerError, match="mask .* must have the input's shape"):
        build("Upsample", "", [torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 4)])


FILLERS = 'scale_filler { type: "gaussian" mean: 1 std: 0.3 } shift_filler { type: "gaussian" std: 0.5 }'


def reference_learn(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """bn_layer.cpp LEARN: batch mean, E(X²) − (EX)² variance, eps 1e-9."""
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.square().mean(dim=(0, 2, 3), keepdim=True) - mean.square()
    y = scale.view(1, -1, 1, 1) * (x - mean) / torch.sqrt(var + 1e-9) + shift.view(1, -1, 1, 1)
    return y, mean, var


class TestBNLearn(LayerCase):
    layer_type = "BN"
    dialect = "segnet"
    params = [f"bn_param {{ {FILLERS} }}", f"bn_param {{ bn_mode: LEARN {FILLERS} }}"]
    bottom_shapes = [(3, 4, 2, 3)]
    in_place = True
    accumulates_param_diffs = False  # the fork's gemv with beta 0 assigns the param diffs

    def reference(self, bottoms: Tensors, blobs: Tensors, param: caffe_pb2.LayerParameter) -> Tensors:
        return reference_learn(bottoms[0], *blobs)[:1]


class TestBNLearnStatisticsTops(LayerCase):
    layer_type = "BN"
    dialect = "segnet"
    params = [f"bn_param {{ {FILLERS} }}"]
    bottom_shapes = [(2, 3, 4, 5)]
    num_tops = 3
    check_tops = [0]  # the statistics tops take no gradient (the fork ignores their diffs)
    phase = caffe_pb2.TEST  # LEARN uses batch statistics in either phase
    accumulates_param_diffs = False

    def reference(self, bottoms: Tensors, blobs: Tensors, param: caffe_pb2.LayerParameter) -> Tensors:
        y, mean, var = reference_learn(bottoms[0], *blobs)
        return y, mean.view(1, -1, 1, 1), var.view(1, -1, 1, 1)


class TestBNInference(LayerCase):
    layer_type = "BN"
    dialect = "segnet"
    params = [f"bn_param {{ bn_mode: INFERENCE {FILLERS} }}"]
    bottom_shapes = [(2, 3, 4, 5)]
    accumulates_param_diffs = False

    def reference(self, bottoms: Tensors, blobs: Tensors, param: caffe_pb2.LayerParameter) -> Tensors:
        (x,), (scale, shift) = bottoms, blobs
        return (scale.view(1, -1, 1, 1) * x + shift.view(1, -1, 1, 1),)


def test_bn_blobs_defaults_and_mode_checks() -> None:
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(5))
    layer, _, top = build("BN", "", [x])
    assert [b.shape for b in layer.blobs] == [(1, 3, 1, 1)] * 2
    assert not any(bool(b.data.any()) for b in layer.blobs)  # no filler: constant 0, as the fork
    assert not bool(top[0].data.any())
    with pytest.raises(LayerError, match="INFERENCE produces 1 top"):
        build("BN", "bn_param { bn_mode: INFERENCE }", [x], tops=2)


def test_bn_inference_in_place_reads_the_overwritten_bottom_as_the_fork() -> None:
    """SegNet's prototxts run BN in place: the fork's scale gradient then sums dy · y, not dy · x."""
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    param = SEGNET.lower_layer(prototxt.parse_text(
        f'name: "L" type: "BN" bn_param {{ bn_mode: INFERENCE {FILLERS} }}', SEGNET.layer_parameter()))
    layer = LAYERS.get("BN", "segnet")(param, dtype=torch.float64)
    blob = Blob(x.shape, dtype=torch.float64)
    blob.data.copy_(x)
    rng.set_random_seed(1)
    layer.setup([blob], [blob])
    layer.run_forward([blob], [blob])
    y = blob.data.clone()
    blob.diff.fill_(1.0)
    layer.run_backward([blob], [True], [blob])
    torch.testing.assert_close(layer.blobs[0].diff.view(-1), y.sum(dim=(0, 2, 3)))
    torch.testing.assert_close(blob.diff, layer.blobs[0].data.view(1, -1, 1, 1).expand_as(x))


def test_segnet_and_pspnet_bn_read_their_own_bn_param() -> None:
    assert SEGNET.pb2.LayerParameter.DESCRIPTOR.fields_by_name["bn_param"].number == 45
    assert forks.get_dialect("pspnet").pb2.LayerParameter.DESCRIPTOR.fields_by_name["bn_param"].number == 152
    assert LAYERS.get("BN", "segnet") is not LAYERS.get("BN", "pspnet")


class TestDropoutSampleWeightsTest(LayerCase):
    layer_type = "Dropout"
    dialect = "segnet"
    params = ["dropout_param { sample_weights_test: true }",
              "dropout_param { dropout_ratio: 0.3 sample_weights_test: true }"]
    phase = caffe_pb2.TEST
    in_place = True

    def reference(self, bottoms: Tensors, blobs: Tensors, param: caffe_pb2.LayerParameter) -> Tensors:
        ratio = float(torch.tensor(param.dropout_param.dropout_ratio, dtype=torch.float32))
        return (bottoms[0] * cast(Any, self.layer).mask.double() / (1 - ratio),)


def dropout_top(snippet: str, phase: caffe_pb2.Phase.ValueType, x: torch.Tensor,
                dialect: str | None) -> torch.Tensor:
    text = f'name: "d" type: "Dropout" {snippet}'
    if dialect is None:
        param = prototxt.parse_text(text, caffe_pb2.LayerParameter())
    else:
        param = SEGNET.lower_layer(prototxt.parse_text(text, SEGNET.layer_parameter()))
    param.phase = phase
    layer = LAYERS.get("Dropout", dialect)(param)
    bottom, top = Blob(x.shape), Blob()
    bottom.data.copy_(x)
    rng.set_random_seed(7)
    layer.setup([bottom], [top])
    layer.run_forward([bottom], [top])
    return top.data.clone()


def test_mc_dropout_draws_bvlc_training_masks_at_test_time_from_the_seeded_stream() -> None:
    x = torch.randn(4, 40, generator=torch.Generator().manual_seed(1))
    train = dropout_top("dropout_param { dropout_ratio: 0.4 }", caffe_pb2.TRAIN, x, None)
    mc = dropout_top("dropout_param { dropout_ratio: 0.4 sample_weights_test: true }", caffe_pb2.TEST, x,
                     "segnet")
    assert torch.equal(mc, train)  # BVLC's TRAIN dropout, bit for bit, in TEST
    assert torch.equal(dropout_top("", caffe_pb2.TEST, x, "segnet"), x)  # without it: BVLC's TEST identity
    bvlc_train = dropout_top("", caffe_pb2.TRAIN, x, None)
    assert torch.equal(dropout_top("", caffe_pb2.TRAIN, x, "segnet"), bvlc_train)
