from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recaffe.layer import LayerError
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_case import LayerCase
from tests.layers.loss.helpers import blob_of, make_layer, normalize

SHAPE = (4, 5, 2)


class TestSigmoidCrossEntropyLoss(LayerCase):
    layer_type = "SigmoidCrossEntropyLoss"
    params = [
        "",
        "loss_weight: 3.7",
        "loss_param { ignore_label: -1 }",
        "loss_param { normalization: VALID ignore_label: -1 }",
        "loss_param { normalize: true }",
        "loss_param { normalize: false }",
        "loss_param { normalization: FULL }",
        "loss_param { normalization: NONE }",
    ]
    bottom_shapes = [SHAPE, SHAPE]
    check_bottoms = [0]

    def make_bottoms(self, param, generator):
        x = 2 * torch.randn(SHAPE, generator=generator, dtype=torch.float64)
        target = torch.rand(SHAPE, generator=generator, dtype=torch.float64)
        if param.loss_param.HasField("ignore_label"):
            target.view(-1)[::3] = param.loss_param.ignore_label
        return [x, target]

    def reference(self, bottoms, blobs, param):
        x, t = bottoms
        valid = torch.ones_like(t, dtype=torch.bool)
        if param.loss_param.HasField("ignore_label"):
            valid = t.long() != param.loss_param.ignore_label
        terms = t * F.logsigmoid(x) + (1 - t) * F.logsigmoid(-x)
        loss = -torch.where(valid, terms, 0).sum()
        return (normalize(loss, param.loss_param, caffe_pb2.LossParameter.BATCH_SIZE,
                          x.shape[0], x[0].numel(), int(valid.sum())),)


def data_and_targets() -> list:
    generator = torch.Generator().manual_seed(1701)
    x = torch.randn(10, 5, generator=generator)
    return [blob_of(x, torch.float32), blob_of(torch.rand(10, 5, generator=generator), torch.float32)]


def test_matches_the_naive_cross_entropy() -> None:
    bottom = data_and_targets()
    layer, top = make_layer("SigmoidCrossEntropyLoss", "loss_weight: 3.7", bottom)
    loss = float(layer.run_forward(bottom, top))
    x, t = (b.data.double() for b in bottom)
    p = 1 / (1 + torch.exp(-x))
    naive = -(t * p.log() + (1 - t) * (1 - p).log()).sum() / 10
    assert loss == pytest.approx(3.7 * float(naive), abs=2e-5)


def test_large_scores_stay_finite() -> None:
    x, t = blob_of([[100.0, -100.0]], torch.float32), blob_of([[0.0, 1.0]], torch.float32)
    layer, top = make_layer("SigmoidCrossEntropyLoss", "", [x, t])
    layer.run_forward([x, t], top)
    assert float(top[0].data) == pytest.approx(200.0)


def test_ignored_targets_get_zero_gradient() -> None:
    x, t = data_and_targets()
    t.data.view(-1)[:25] = -1
    layer, top = make_layer("SigmoidCrossEntropyLoss", "loss_param { ignore_label: -1 }", [x, t])
    layer.run_forward([x, t], top)
    layer.run_backward(top, [True, False], [x, t])
    diff = x.diff.view(-1)
    assert bool((diff[:25] == 0).all()) and bool((diff[25:] != 0).all())


def test_counts_must_agree() -> None:
    with pytest.raises(LayerError, match="same count"):
        make_layer("SigmoidCrossEntropyLoss", "", [blob_of(torch.zeros(2, 3)), blob_of(torch.zeros(2, 2))])
