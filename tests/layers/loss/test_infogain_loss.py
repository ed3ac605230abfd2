from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recaffe.io import blobproto, prototxt
from recaffe.layer import LayerError
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_case import LayerCase
from tests.layers.loss.helpers import blob_of, make_layer, normalize, random_labels

SHAPE = (2, 3, 4, 2)


def ignore_of(param: caffe_pb2.LayerParameter) -> int | None:
    return param.loss_param.ignore_label if param.loss_param.HasField("ignore_label") else None


class TestInfogainLoss(LayerCase):
    layer_type = "InfogainLoss"
    params = [
        "",
        "infogain_loss_param { axis: 2 }",
        "loss_param { ignore_label: 1 } loss_weight: 2",
        "loss_param { normalization: BATCH_SIZE }",
        "loss_param { normalization: NONE } infogain_loss_param { axis: -1 }",
    ]
    check_bottoms = [0]

    def make_bottoms(self, param, generator):
        axis = param.infogain_loss_param.axis % len(SHAPE)
        channels = SHAPE[axis]
        x = 2.5 * torch.rand(SHAPE, generator=generator, dtype=torch.float64) - 0.5
        label = random_labels(SHAPE[:axis] + SHAPE[axis + 1:], channels, generator)
        if ignore_of(param) is not None:
            label.view(-1)[::4] = ignore_of(param)
        h = 0.1 + 1.9 * torch.rand(1, 1, channels, channels, generator=generator, dtype=torch.float64)
        return [x, label, h]

    def reference(self, bottoms, blobs, param):
        x, label, h = bottoms
        axis = param.infogain_loss_param.axis % x.dim()
        outer, channels = math.prod(x.shape[:axis]), x.shape[axis]
        scores = x.reshape(outer, channels, -1)
        prob = scores.exp() / scores.exp().sum(1, keepdim=True)  # (outer, C, inner)
        lab = label.reshape(outer, -1).long()
        ignore = ignore_of(param)
        valid = lab != ignore if ignore is not None else torch.ones_like(lab, dtype=torch.bool)
        rows = h.reshape(channels, channels)[torch.where(valid, lab, 0)].permute(0, 2, 1)
        loss = -torch.where(valid.unsqueeze(1), rows * prob.log(), 0).sum()
        loss = normalize(loss, param.loss_param, caffe_pb2.LossParameter.VALID,
                         outer, lab.shape[1], int(valid.sum()))
        return (loss, prob.reshape(x.shape))[: self.top_count(param)]


class TestInfogainLossProbTop(TestInfogainLoss):
    params = ["loss_weight: 1 loss_weight: 0 infogain_loss_param { axis: 2 }"]
    num_tops = 2
    check_tops = [0]


def bottoms() -> list:
    generator = torch.Generator().manual_seed(5)
    x, label, h = TestInfogainLoss().make_bottoms(caffe_pb2.LayerParameter(), generator)
    return [blob_of(x), blob_of(label), blob_of(h)]


def test_identity_h_is_the_softmax_loss() -> None:
    x, label, h = bottoms()
    h.data.copy_(torch.eye(3).reshape(1, 1, 3, 3))
    infogain, top = make_layer("InfogainLoss", "", [x, label, h])
    infogain.run_forward([x, label, h], top)
    softmax, top2 = make_layer("SoftmaxWithLoss", "", [x, label])
    softmax.run_forward([x, label], top2)
    torch.testing.assert_close(top[0].data, top2[0].data)


def test_h_from_a_binaryproto_source(tmp_path) -> None:
    x, label, h = bottoms()
    path = tmp_path / "h.binaryproto"
    prototxt.write_binary(path, blobproto.array_to_proto(h.data.numpy().astype(np.float32)))
    with_bottom, top = make_layer("InfogainLoss", "", [x, label, h])
    with_bottom.run_forward([x, label, h], top)
    from_file, top2 = make_layer("InfogainLoss", f'infogain_loss_param {{ source: "{path}" }}', [x, label])
    from_file.run_forward([x, label], top2)
    torch.testing.assert_close(top2[0].data, top[0].data, rtol=1e-6, atol=0)
    with_bottom.run_backward(top, [True, False, False], [x, label, h])
    expected = x.diff.clone()
    from_file.run_backward(top2, [True, False], [x, label])
    torch.testing.assert_close(x.diff, expected, rtol=1e-6, atol=1e-9)


def test_missing_source_is_an_error() -> None:
    x, label, _ = bottoms()
    with pytest.raises(LayerError, match="infogain_loss_param.source"):
        make_layer("InfogainLoss", "", [x, label])


def test_normalize_is_rejected() -> None:
    with pytest.raises(LayerError, match="normalize is deprecated"):
        make_layer("InfogainLoss", "loss_param { normalize: true }", bottoms())


def test_h_must_be_c_by_c() -> None:
    x, label, _ = bottoms()
    with pytest.raises(LayerError, match="H must be 3x3, got 4 values"):
        make_layer("InfogainLoss", "", [x, label, blob_of(torch.ones(2, 2))])


def test_neither_labels_nor_h_get_a_gradient() -> None:
    bottom = bottoms()
    layer, top = make_layer("InfogainLoss", "", bottom)
    assert [layer.allow_force_backward(i) for i in range(3)] == [True, False, False]
    layer.run_forward(bottom, top)
    with pytest.raises(LayerError, match="infogain matrix"):
        layer.run_backward(top, [True, False, True], bottom)
