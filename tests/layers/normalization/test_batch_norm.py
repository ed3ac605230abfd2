from __future__ import annotations

import pytest
import torch

from recaffe.blob import Blob
from recaffe.io import prototxt
from recaffe.layer import LayerError
from recaffe.layers.normalization.batch_norm import BatchNormLayer
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_case import LayerCase

# Running sums for 2 channels with s = 2: global mean (0.25, -0.5), global variance (2, 1).
STATS = ("blobs { shape { dim: 2 } data: 0.5 data: -1 } "
         "blobs { shape { dim: 2 } data: 4 data: 2 } "
         "blobs { shape { dim: 1 } data: 2 }")


def batch_norm_reference(x: torch.Tensor, blobs, param: caffe_pb2.LayerParameter) -> torch.Tensor:
    p = param.batch_norm_param
    use_global = p.use_global_stats if p.HasField("use_global_stats") else param.phase == caffe_pb2.TEST
    channels = 1 if x.dim() == 1 else x.shape[1]
    xv = x.reshape(x.shape[0], channels, -1)
    if use_global:
        s = float(blobs[2].detach()[0])
        factor = 0.0 if s == 0 else 1 / s
        mean, var = blobs[0].detach() * factor, blobs[1].detach() * factor
    else:
        mean = xv.mean(dim=(0, 2))
        var = (xv - mean.view(1, -1, 1)).square().mean(dim=(0, 2))
    y = (xv - mean.view(1, -1, 1)) / (var + p.eps).sqrt().view(1, -1, 1)
    return y.reshape(x.shape)


class TestBatchNorm(LayerCase):
    layer_type = "BatchNorm"
    params = [
        "",
        "batch_norm_param { eps: 0.001 moving_average_fraction: 0.9 }",
        f"batch_norm_param {{ use_global_stats: true }} {STATS}",
        f"phase: TEST {STATS}",
        "phase: TEST batch_norm_param { use_global_stats: false }",
    ]
    bottom_shapes = [(5, 2, 3, 4)]
    stepsize, threshold = 1e-2, 1e-4  # Caffe's checker settings for this layer
    in_place = True

    def reference(self, bottoms, blobs, param):
        return (batch_norm_reference(bottoms[0], blobs, param),)


class TestBatchNorm2D(TestBatchNorm):
    params = ["", f"batch_norm_param {{ use_global_stats: true }} {STATS}"]
    bottom_shapes = [(6, 2)]


class TestBatchNorm1D(TestBatchNorm):
    params = ["", "batch_norm_param { use_global_stats: true } blobs { shape { dim: 1 } data: 0.5 } "
              "blobs { shape { dim: 1 } data: 4 } blobs { shape { dim: 1 } data: 2 }"]
    bottom_shapes = [(7,)]


def make_layer(text: str = "", phase: int = caffe_pb2.TRAIN) -> BatchNormLayer:
    param = prototxt.parse_text(f'name: "bn" type: "BatchNorm" {text}', caffe_pb2.LayerParameter())
    param.phase = phase
    return BatchNormLayer(param, dtype=torch.float64)


def run(layer: BatchNormLayer, values: torch.Tensor, in_place: bool = False) -> tuple[Blob, Blob]:
    """Set up and forward ``layer`` on a float64 bottom holding ``values``; return (bottom, top)."""
    x = Blob(values.shape, dtype=torch.float64)
    x.data.copy_(values)
    top = x if in_place else Blob(dtype=torch.float64)
    layer.setup([x], [top])
    layer.run_forward([x], [top])
    return x, top


def channel_stats(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    per_channel = values.transpose(0, 1).reshape(values.shape[1], -1)
    return per_channel.mean(dim=1), per_channel.var(dim=1, unbiased=False)


@pytest.mark.parametrize("in_place", [False, True])
def test_training_output_has_zero_mean_unit_variance_per_channel(in_place: bool) -> None:
    values = torch.randn(5, 2, 3, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    _, top = run(make_layer(), values, in_place)
    mean, var = channel_stats(top.data)
    torch.testing.assert_close(mean, torch.zeros(2, dtype=torch.float64), atol=1e-3, rtol=0)
    torch.testing.assert_close(var, torch.ones(2, dtype=torch.float64), atol=1e-3, rtol=0)


def test_running_sums_update_on_every_training_forward() -> None:
    gen = torch.Generator().manual_seed(5)
    first, second = (torch.randn(2, 3, 4, generator=gen, dtype=torch.float64) for _ in range(2))
    layer = make_layer("batch_norm_param { moving_average_fraction: 0.5 }")
    x, top = run(layer, first)
    x.data.copy_(second)
    layer.run_forward([x], [top])
    (mean1, var1), (mean2, var2) = channel_stats(first), channel_stats(second)
    m = 2 * 4  # count / channels
    torch.testing.assert_close(layer.blobs[2].data, torch.tensor([1.5], dtype=torch.float64))  # 0.5·1 + 1
    torch.testing.assert_close(layer.blobs[0].data, mean2 + 0.5 * mean1)
    torch.testing.assert_close(layer.blobs[1].data, m / (m - 1) * (var2 + 0.5 * var1))


def test_global_stats_divide_the_sums_by_the_scale_factor() -> None:
    layer = make_layer(STATS, caffe_pb2.TEST)
    _, top = run(layer, torch.tensor([[1.0, 2.0]], dtype=torch.float64))
    want = [(1 - 0.25) / (2 + 1e-5) ** 0.5, (2 + 0.5) / (1 + 1e-5) ** 0.5]
    torch.testing.assert_close(top.data, torch.tensor([want], dtype=torch.float64))
    assert float(layer.blobs[2].data[0]) == 2.0  # no update outside batch statistics


def test_zero_scale_factor_means_zero_statistics() -> None:
    x, top = run(make_layer(phase=caffe_pb2.TEST), torch.tensor([[3.0, -1.0]], dtype=torch.float64))
    torch.testing.assert_close(top.data, x.data / 1e-5 ** 0.5)


def test_statistics_get_lr_mult_zero() -> None:
    layer = make_layer("param { lr_mult: 0 decay_mult: 3 }")
    layer.setup([Blob((2, 3))], [Blob()])
    assert [spec.lr_mult for spec in layer.param.param] == [0, 0, 0]
    assert layer.param.param[0].decay_mult == 3  # Caffe leaves decay_mult alone
    assert layer.param_propagate_down == [False, False, False]


@pytest.mark.parametrize("spec", ["param { lr_mult: 1 }", "param { lr_mult: 0 } param { decay_mult: 0 }"])
def test_learnable_statistics_are_refused(spec: str) -> None:
    # A ParamSpec without lr_mult has lr_mult 1, so it is refused as in Caffe.
    with pytest.raises(LayerError, match="lr_mult"):
        make_layer(spec).setup([Blob((2, 3))], [Blob()])


def test_channel_change_is_reported() -> None:
    layer, x, top = make_layer(), Blob((2, 3)), [Blob()]
    layer.setup([x], top)
    x.reshape((2, 4))
    with pytest.raises(LayerError, match="4 channels"):
        layer.run_forward([x], top)


def test_global_stats_keep_no_normalized_copy() -> None:
    layer = make_layer(phase=caffe_pb2.TEST)
    run(layer, torch.ones(4, 3, 2, dtype=torch.float64))
    assert layer.x_norm is None
