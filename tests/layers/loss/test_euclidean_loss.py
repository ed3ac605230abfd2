from __future__ import annotations

import pytest
import torch

from recaffe.layer import LayerError
from recaffe.testing.layer_case import LayerCase
from tests.layers.loss.helpers import blob_of, make_layer


class TestEuclideanLoss(LayerCase):
    layer_type = "EuclideanLoss"
    params = ["", "loss_weight: 3.7"]
    bottom_shapes = [(4, 5), (4, 5, 1, 1)]  # only the count per item must agree

    def reference(self, bottoms, blobs, param):
        a, b = bottoms
        return (((a - b.reshape(a.shape)) ** 2).sum() / a.shape[0] / 2,)


def bottoms() -> list:
    generator = torch.Generator().manual_seed(1701)
    return [blob_of(torch.randn(10, 5, 1, 1, generator=generator), torch.float32) for _ in range(2)]


def test_loss_scales_linearly_with_the_loss_weight() -> None:
    bottom = bottoms()
    layer, top = make_layer("EuclideanLoss", "", bottom)
    unweighted = float(layer.run_forward(bottom, top))
    layer, top = make_layer("EuclideanLoss", "loss_weight: 3.7", bottom)
    weighted = float(layer.run_forward(bottom, top))
    assert weighted == pytest.approx(3.7 * unweighted, abs=1e-5)
    assert abs(unweighted) >= 0.1


def test_hand_computed_values() -> None:
    a, b = blob_of([[1.0, 2.0], [0.0, -1.0]]), blob_of([[0.0, 0.0], [3.0, -1.0]])
    layer, top = make_layer("EuclideanLoss", "loss_weight: 2", [a, b])
    layer.run_forward([a, b], top)
    assert float(top[0].data) == pytest.approx((1 + 4 + 9) / 4)
    layer.run_backward(top, [True, True], [a, b])
    torch.testing.assert_close(a.diff, torch.tensor([[1.0, 2.0], [-3.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(b.diff, -a.diff)


def test_both_bottoms_take_force_backward() -> None:
    layer, _ = make_layer("EuclideanLoss", "", bottoms())
    assert layer.allow_force_backward(0) and layer.allow_force_backward(1)


def test_dimensions_must_agree() -> None:
    with pytest.raises(LayerError, match="same dimension"):
        make_layer("EuclideanLoss", "", [blob_of(torch.zeros(2, 3)), blob_of(torch.zeros(2, 4))])
    with pytest.raises(LayerError, match="same first dimension"):
        make_layer("EuclideanLoss", "", [blob_of(torch.zeros(2, 3)), blob_of(torch.zeros(3, 2))])
