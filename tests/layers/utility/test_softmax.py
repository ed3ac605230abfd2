from __future__ import annotations

import torch

from recaffe.testing.layer_case import LayerCase


class TestSoftmax(LayerCase):
    layer_type = "Softmax"
    params = ["", "softmax_param { axis: 2 }", "softmax_param { axis: -1 }", "softmax_param { axis: 0 }"]
    bottom_shapes = [(2, 3, 4, 5)]
    in_place = True

    def reference(self, bottoms, blobs, param):
        return (torch.softmax(bottoms[0], dim=param.softmax_param.axis),)


class TestSoftmax2D(TestSoftmax):
    params = ["", "softmax_param { axis: 0 }"]
    bottom_shapes = [(4, 7)]


def test_values_sum_to_one_along_the_axis_and_follow_exp() -> None:
    case = TestSoftmax()
    layer, bottom, top = case.build("", torch.float64)
    case.forward(layer, bottom, top)
    x, y = bottom[0].data, top[0].data
    torch.testing.assert_close(y.sum(dim=1), torch.ones(2, 4, 5, dtype=torch.float64))
    n, h, w = 1, 2, 3
    want = x[n, :, h, w].exp() / x[n, :, h, w].exp().sum()
    torch.testing.assert_close(y[n, :, h, w], want)


def test_large_inputs_do_not_overflow() -> None:
    case = TestSoftmax()
    case.make_bottoms = lambda param, generator: [torch.tensor([[1000.0, 1001.0], [-1000.0, -1001.0]])]
    layer, bottom, top = case.build("", torch.float32)
    case.forward(layer, bottom, top)
    e = 1 / (1 + torch.e)
    torch.testing.assert_close(top[0].data, torch.tensor([[e, 1 - e], [1 - e, e]]))
