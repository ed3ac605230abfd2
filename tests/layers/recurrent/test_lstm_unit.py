from __future__ import annotations

import pytest
import torch

from recaffe.blob import Blob
from recaffe.layer import LayerError
from recaffe.layers.recurrent.lstm_unit import LSTMUnitLayer
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_case import LayerCase


def unit() -> LSTMUnitLayer:
    return LSTMUnitLayer(caffe_pb2.LayerParameter(name="u", type="LSTMUnit"), dtype=torch.float64)


class TestLSTMUnit(LayerCase):
    layer_type = "LSTMUnit"
    bottom_shapes = [(1, 3, 4), (1, 3, 16), (1, 3)]
    num_tops = 2
    check_bottoms = (0, 1)

    def make_bottoms(self, param, generator):
        c_prev, x, _ = super().make_bottoms(param, generator)
        return [c_prev, x, torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64)]

    def reference(self, bottoms, blobs, param):
        c_prev, x, cont = bottoms
        i, f, o, g = x.chunk(4, -1)
        c = cont[..., None] * torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
        return c, torch.sigmoid(o) * torch.tanh(c)


def test_fractional_cont_follows_caffe() -> None:
    """f = cont·σ(x_f) forward; its backward uses f(1 − f) with that scaled f, as Caffe does."""
    layer = unit()
    bottom = [Blob((1, 1, 1), dtype=torch.float64), Blob((1, 1, 4), dtype=torch.float64),
              Blob((1, 1), dtype=torch.float64)]
    bottom[0].data.fill_(2.0)
    bottom[1].data.copy_(torch.tensor([0.3, 0.4, -0.2, 0.5]).view(1, 1, 4))
    bottom[2].data.fill_(0.5)
    top = [Blob(dtype=torch.float64), Blob(dtype=torch.float64)]
    layer.setup(bottom, top)
    layer.run_forward(bottom, top)
    i, f = torch.sigmoid(torch.tensor(0.3, dtype=torch.float64)), 0.5 * torch.sigmoid(torch.tensor(0.4))
    g = torch.tanh(torch.tensor(0.5, dtype=torch.float64))
    assert float(top[0].data) == pytest.approx(float(f * 2.0 + i * g))
    top[0].diff.fill_(1.0)
    layer.run_backward(top, [True, True, False], bottom)
    assert float(bottom[1].diff[0, 0, 1]) == pytest.approx(float(2.0 * f * (1 - f)))
    assert float(bottom[0].diff) == pytest.approx(float(f))


def test_zero_cont_gives_an_exact_zero_forget_gate() -> None:
    """Where cont == 0, f is 0 whatever x_f holds (Caffe tests cont before computing σ)."""
    layer = unit()
    bottom = [Blob((1, 2, 3)), Blob((1, 2, 12)), Blob((1, 2))]
    bottom[0].data.normal_()
    bottom[1].data.normal_()
    bottom[1].data[..., 3:6] = float("nan")
    bottom[2].data.copy_(torch.tensor([[0.0, 1.0]]))
    top = [Blob(), Blob()]
    layer.setup(bottom, top)
    layer.run_forward(bottom, top)
    assert bool(torch.isfinite(top[0].data[0, 0]).all())
    assert bool(torch.isnan(top[0].data[0, 1]).all())


def test_shapes_are_checked() -> None:
    with pytest.raises(LayerError, match="4 · H = 12"):
        unit().setup([Blob((1, 2, 3)), Blob((1, 2, 8)), Blob((1, 2))], [Blob(), Blob()])
    with pytest.raises(LayerError, match=r"bottom\[2\] \(cont\)"):
        unit().setup([Blob((1, 2, 3)), Blob((1, 2, 12)), Blob((1, 2, 1))], [Blob(), Blob()])
    with pytest.raises(LayerError, match=r"bottom\[1\] \(x\)"):
        unit().setup([Blob((1, 2, 3)), Blob((2, 2, 12)), Blob((1, 2))], [Blob(), Blob()])


def test_backward_to_cont_is_an_error() -> None:
    layer = unit()
    bottom, top = [Blob((1, 2, 3)), Blob((1, 2, 12)), Blob((1, 2))], [Blob(), Blob()]
    layer.setup(bottom, top)
    assert not layer.allow_force_backward(2) and layer.allow_force_backward(0)
    with pytest.raises(LayerError, match="sequence continuation indicators"):
        layer.run_backward(top, [True, True, True], bottom)
