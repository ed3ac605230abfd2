from __future__ import annotations

import math

import pytest
import torch

from recaffe.layer import LayerError
from recaffe.testing.layer_case import LayerCase
from tests.layers.loss.helpers import blob_of, make_layer, random_labels


class TestMultinomialLogisticLoss(LayerCase):
    layer_type = "MultinomialLogisticLoss"
    params = ["", "loss_weight: 2"]
    bottom_shapes = [(6, 5, 1, 1), (6,)]
    check_bottoms = [0]

    def make_bottoms(self, param, generator):
        """Rows of probabilities, all above 0.018 (far from the 1e-20 floor)."""
        p = 0.1 + torch.rand(self.bottom_shapes[0], generator=generator, dtype=torch.float64)
        p = p / p.sum(1, keepdim=True)
        return [p, random_labels(self.bottom_shapes[1], 5, generator)]

    def reference(self, bottoms, blobs, param):
        p, label = bottoms
        picked = p.reshape(p.shape[0], -1).gather(1, label.long().unsqueeze(1))
        return (-picked.log().sum() / p.shape[0],)


def test_zero_probability_is_floored_at_1e_20() -> None:
    p, label = blob_of([[0.0, 1.0], [0.5, 0.5]]), blob_of([0.0, 1.0])
    layer, top = make_layer("MultinomialLogisticLoss", "", [p, label])
    layer.run_forward([p, label], top)
    assert float(top[0].data) == pytest.approx((-math.log(1e-20) - math.log(0.5)) / 2)
    layer.run_backward(top, [True, False], [p, label])
    want = torch.tensor([[-0.5 / 1e-20, 0.0], [0.0, -0.5 / 0.5]], dtype=torch.float64)
    torch.testing.assert_close(p.diff, want)


def test_labels_must_be_one_per_item() -> None:
    with pytest.raises(LayerError, match=r"labels must be \(N, 1, 1, 1\)"):
        make_layer("MultinomialLogisticLoss", "", [blob_of(torch.ones(2, 3)), blob_of(torch.zeros(2, 2))])


def test_label_outside_the_classes_is_an_error() -> None:
    p, label = blob_of(torch.full((2, 3), 1 / 3)), blob_of([0.0, -1.0])
    layer, top = make_layer("MultinomialLogisticLoss", "", [p, label])
    with pytest.raises(LayerError, match=r"label -1 is outside \[0, 3\)"):
        layer.run_forward([p, label], top)
