from __future__ import annotations

import pytest
import torch

from recaffe.layer import LayerError
from recaffe.testing.layer_case import LayerCase


class TestMVN(LayerCase):
    layer_type = "MVN"
    params = [
        "",
        "mvn_param { normalize_variance: false }",
        "mvn_param { across_channels: true }",
        "mvn_param { normalize_variance: false across_channels: true }",
    ]  # eps: see the dedicated tests (Caffe's backward is exact only as eps -> 0)
    bottom_shapes = [(2, 3, 4, 5)]
    stepsize, threshold = 1e-2, 1e-3  # Caffe's checker settings for this layer
    in_place = True  # exact here (Caffe's own in-place backward is not; see the layer docstring)

    def reference(self, bottoms, blobs, param):
        p, x = param.mvn_param, bottoms[0]
        shape = (*x.shape, *(1,) * (4 - x.dim()))  # the legacy 4-D accessors
        rows = x.reshape(shape[0] if p.across_channels else shape[0] * shape[1], -1)
        y = rows - rows.mean(dim=1, keepdim=True)
        if p.normalize_variance:
            y = y / (y.square().mean(dim=1, keepdim=True).sqrt() + p.eps)
        return (y.reshape(shape),)


class TestMVNTwoAxes(TestMVN):
    params = ["mvn_param { across_channels: true }",
              "mvn_param { normalize_variance: false across_channels: true }"]
    bottom_shapes = [(3, 6)]
    in_place = False  # the 4-D top reshapes the shared bottom too


def normalized(snippet: str) -> torch.Tensor:
    case = TestMVN()
    layer, bottom, top = case.build(snippet, torch.float64)
    case.forward(layer, bottom, top)
    return top[0].data


@pytest.mark.parametrize(("snippet", "groups"), [
    ("", (2, 3)),
    ("mvn_param { across_channels: true }", (2,)),
])
def test_each_group_has_zero_mean_unit_variance(snippet: str, groups: tuple[int, ...]) -> None:
    rows = normalized(snippet).reshape(*groups, -1)
    torch.testing.assert_close(rows.mean(dim=-1), torch.zeros(groups, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(rows.var(dim=-1, unbiased=False), torch.ones(groups, dtype=torch.float64),
                               atol=1e-6, rtol=0)


def test_mean_only_keeps_the_spread() -> None:
    y = normalized("mvn_param { normalize_variance: false }").reshape(6, -1)
    torch.testing.assert_close(y.mean(dim=1), torch.zeros(6, dtype=torch.float64), atol=1e-12, rtol=0)
    assert float(y.var(dim=1).min()) > 0.1


def test_eps_is_added_to_the_standard_deviation() -> None:
    case = TestMVN()
    case.bottom_shapes = [(1, 1, 1, 2)]
    case.make_bottoms = lambda param, generator: [torch.tensor([[[[1.0, 3.0]]]], dtype=torch.float64)]
    layer, bottom, top = case.build("mvn_param { eps: 0.5 }", torch.float64)
    case.forward(layer, bottom, top)
    # mean 2, std 1: y = ±1 / (1 + 0.5); with eps on the variance it would be ±1 / sqrt(1.5)
    torch.testing.assert_close(top[0].data.flatten(), torch.tensor([-2 / 3, 2 / 3], dtype=torch.float64))


def test_backward_uses_caffes_formula_which_ignores_eps_in_the_variance_term() -> None:
    # Caffe's dx = (dy − mean(dy) − mean(dy·y)·y) / (std + eps) is the true gradient only for eps = 0.
    case = TestMVN()
    layer, bottom, top = case.build("mvn_param { eps: 0.5 }", torch.float64)
    case.forward(layer, bottom, top)
    dy = torch.randn(top[0].shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    top[0].diff.copy_(dy)
    layer.run_backward(top, [True], bottom)
    x, y, dy = bottom[0].data.reshape(6, -1), top[0].data.reshape(6, -1), dy.reshape(6, -1)
    std = (x - x.mean(dim=1, keepdim=True)).square().mean(dim=1, keepdim=True).sqrt()
    want = (dy - dy.mean(dim=1, keepdim=True) - (dy * y).mean(dim=1, keepdim=True) * y) / (std + 0.5)
    torch.testing.assert_close(bottom[0].diff.reshape(6, -1), want)


def test_top_is_four_dimensional() -> None:
    case = TestMVNTwoAxes()
    layer, bottom, top = case.build(case.params[0], torch.float64)
    assert top[0].shape == (3, 6, 1, 1)


def test_more_than_four_axes_is_refused() -> None:
    case = TestMVN()
    case.bottom_shapes = [(2, 3, 4, 5, 1)]
    with pytest.raises(LayerError, match="at most 4 axes"):
        case.build("", torch.float64)
