from __future__ import annotations

import pytest
import torch

from recaffe.layer import LayerError
from recaffe.testing.layer_case import LayerCase
from tests.layers.loss.helpers import blob_of, make_layer

N, C = 16, 2


class CaffeDistance(torch.autograd.Function):
    """sqrt(d²) whose gradient uses Caffe's denominator d + 1e-4."""

    @staticmethod
    def forward(ctx, dist_sq):
        dist = dist_sq.sqrt()
        ctx.save_for_backward(dist)
        return dist

    @staticmethod
    def backward(ctx, grad):
        (dist,) = ctx.saved_tensors
        return grad / (2 * (dist + 1e-4))


class TestContrastiveLoss(LayerCase):
    layer_type = "ContrastiveLoss"
    params = [
        "",
        "contrastive_loss_param { margin: 2 } loss_weight: 0.5",
        "contrastive_loss_param { legacy_version: true }",
        "contrastive_loss_param { legacy_version: true margin: 0.5 }",
    ]
    bottom_shapes = [(N, C, 1, 1), (N, C, 1, 1), (N, 1, 1, 1)]
    check_bottoms = [0, 1]

    def make_bottoms(self, param, generator):
        """Pairs at distances ~1 so both sides of the margin occur, none near the legacy kink."""
        a = 2 * torch.rand(N, C, 1, 1, generator=generator, dtype=torch.float64) - 1
        b = 2 * torch.rand(N, C, 1, 1, generator=generator, dtype=torch.float64) - 1
        dist_sq = ((a - b) ** 2).sum((1, 2, 3))
        near = (dist_sq - param.contrastive_loss_param.margin).abs() < 0.05
        b[near] = a[near] + 0.5 * (b[near] - a[near])
        sim = torch.arange(N, dtype=torch.float64).remainder(2).reshape(N, 1, 1, 1)
        return [a, b, sim]

    def reference(self, bottoms, blobs, param):
        a, b, sim = bottoms
        p = param.contrastive_loss_param
        dist_sq = ((a - b) ** 2).reshape(N, -1).sum(1)
        if p.legacy_version:
            dissimilar = (p.margin - dist_sq).clamp(min=0)
        else:
            dissimilar = (p.margin - CaffeDistance.apply(dist_sq)).clamp(min=0) ** 2
        similar = sim.reshape(-1) != 0
        return (torch.where(similar, dist_sq, dissimilar).sum() / N / 2,)


def pair(a: list, b: list, sim: list) -> list:
    return [blob_of(a), blob_of(b), blob_of(sim)]


def test_hand_computed_values() -> None:
    # distances: 5 (similar), 0.6 (dissimilar, inside margin 1), 3 (dissimilar, outside)
    bottom = pair([[3.0, 4.0], [0.6, 0.0], [0.0, 3.0]], [[0.0, 0.0]] * 3, [1.0, 0.0, 0.0])
    layer, top = make_layer("ContrastiveLoss", "", bottom)
    layer.run_forward(bottom, top)
    assert float(top[0].data) == pytest.approx((25 + 0.4**2) / 6)
    layer, top = make_layer("ContrastiveLoss", "contrastive_loss_param { legacy_version: true }", bottom)
    layer.run_forward(bottom, top)
    assert float(top[0].data) == pytest.approx((25 + (1 - 0.36)) / 6)
    layer.run_backward(top, [True, True, False], bottom)
    want = torch.tensor([[3.0, 4.0], [-0.6, 0.0], [0.0, 0.0]], dtype=torch.float64) / 3
    torch.testing.assert_close(bottom[0].diff, want)
    torch.testing.assert_close(bottom[1].diff, -want)


def test_gradient_denominator_has_the_1e4_offset() -> None:
    bottom = pair([[0.5, 0.0]], [[0.0, 0.0]], [0.0])
    layer, top = make_layer("ContrastiveLoss", "", bottom)
    layer.run_forward(bottom, top)
    layer.run_backward(top, [True, False, False], bottom)
    assert float(bottom[0].diff[0, 0]) == pytest.approx(-(1 - 0.5) / (0.5 + 1e-4) * 0.5, rel=1e-12)


def test_similarity_is_truncated_to_int() -> None:
    bottom = pair([[3.0, 4.0]], [[0.0, 0.0]], [0.9])  # int(0.9) = 0: a dissimilar pair
    layer, top = make_layer("ContrastiveLoss", "", bottom)
    layer.run_forward(bottom, top)
    assert float(top[0].data) == 0.0


def test_similarity_gets_no_gradient() -> None:
    layer, _ = make_layer("ContrastiveLoss", "", pair([[1.0]], [[0.0]], [1.0]))
    assert layer.allow_force_backward(0) and layer.allow_force_backward(1)
    assert not layer.allow_force_backward(2)


def test_shapes_are_checked() -> None:
    with pytest.raises(LayerError, match=r"a and b must be \(N, C, 1, 1\)"):
        make_layer("ContrastiveLoss", "", [blob_of(torch.zeros(2, 3, 2))] * 2 + [blob_of(torch.zeros(2))])
    with pytest.raises(LayerError, match=r"sim must be \(2, 1, 1, 1\)"):
        make_layer("ContrastiveLoss", "", [blob_of(torch.zeros(2, 3))] * 2 + [blob_of(torch.zeros(2, 2))])
