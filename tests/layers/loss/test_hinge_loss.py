from __future__ import annotations

import pytest
import torch

from recaffe.layer import LayerError
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_case import LayerCase
from tests.layers.loss.helpers import blob_of, make_layer, random_labels


class TestHingeLoss(LayerCase):
    layer_type = "HingeLoss"
    params = ["", "hinge_loss_param { norm: L1 } loss_weight: 2", "hinge_loss_param { norm: L2 }"]
    bottom_shapes = [(6, 5, 1, 1), (6, 1, 1, 1)]
    check_bottoms = [0]
    kink, kink_range = 1.0, 0.01  # the margin 1 ± x vanishes at |x| = 1

    def make_bottoms(self, param, generator):
        x = 2 * torch.randn(self.bottom_shapes[0], generator=generator, dtype=torch.float64)
        return [x, random_labels(self.bottom_shapes[1], 5, generator)]

    def reference(self, bottoms, blobs, param):
        x, label = bottoms
        x = x.reshape(x.shape[0], -1)
        signs = 1 - 2 * torch.nn.functional.one_hot(label.reshape(-1).long(), x.shape[1])
        margin = (1 + signs * x).clamp(min=0)
        if param.hinge_loss_param.norm == caffe_pb2.HingeLossParameter.L2:
            margin = margin**2
        return (margin.sum() / x.shape[0],)


def test_hand_computed_values() -> None:
    x, label = blob_of([[0.5, -2.0, 0.2], [3.0, 1.0, -0.5]]), blob_of([0.0, 2.0])
    # margins: row 0 [0.5, 0, 1.2], row 1 [4, 2, 1.5]
    for norm, loss in (("L1", (1.7 + 7.5) / 2), ("L2", (0.25 + 1.44 + 16 + 4 + 2.25) / 2)):
        layer, top = make_layer("HingeLoss", f"hinge_loss_param {{ norm: {norm} }}", [x, label])
        layer.run_forward([x, label], top)
        assert float(top[0].data) == pytest.approx(loss)
    layer, top = make_layer("HingeLoss", "", [x, label])
    layer.run_forward([x, label], top)
    layer.run_backward(top, [True, False], [x, label])
    want = torch.tensor([[-1.0, 0.0, 1.0], [1.0, 1.0, -1.0]], dtype=torch.float64) / 2
    torch.testing.assert_close(x.diff, want)


def test_label_outside_the_scores_is_an_error() -> None:
    x, label = blob_of(torch.zeros(2, 3)), blob_of([0.0, 3.0])
    layer, top = make_layer("HingeLoss", "", [x, label])
    with pytest.raises(LayerError, match=r"label 3 is outside \[0, 3\)"):
        layer.run_forward([x, label], top)
