from __future__ import annotations

import pytest
import torch

from recaffe.blob import Blob
from recaffe.layer import LayerError
from recaffe.layers.neuron.prelu import PReLULayer
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_case import LayerCase
from tests.layers.neuron.helpers import caffe_input, run_backward, run_forward

GAUSSIAN = 'filler { type: "gaussian" std: 0.5 }'


class TestPReLU(LayerCase):
    layer_type = "PReLU"
    params = [
        "", "prelu_param { channel_shared: true }", f"prelu_param {{ {GAUSSIAN} }}",
        f"prelu_param {{ channel_shared: true {GAUSSIAN} }}",
    ]
    bottom_shapes = [(2, 3, 4, 5)]
    kink, kink_range = 0.0, 0.01
    in_place = True

    def reference(self, bottoms, blobs, param):
        (x,), (a,) = bottoms, blobs
        a = a if a.dim() == 0 else a.view(-1, *[1] * (x.dim() - 2))
        return (torch.where(x > 0, x, a * x),)


class TestPReLU2D(TestPReLU):
    params = ["", f"prelu_param {{ {GAUSSIAN} }}"]
    bottom_shapes = [(6, 4)]


def test_default_slope_is_a_quarter_per_channel_or_a_shared_scalar() -> None:
    layer, _, _ = run_forward("PReLU", "", caffe_input())
    assert layer.blobs[0].shape == (3,) and layer.blobs[0].data.tolist() == [0.25] * 3
    shared, _, _ = run_forward("PReLU", "prelu_param { channel_shared: true }", caffe_input())
    assert shared.blobs[0].shape == () and float(shared.blobs[0].data) == 0.25


def test_forward_uses_the_slope_of_each_channel() -> None:
    layer, bottom, top = run_forward("PReLU", f"prelu_param {{ {GAUSSIAN} }}", caffe_input())
    x, a = bottom.data, layer.blobs[0].data
    for c in range(3):
        want = torch.clamp(x[:, c], min=0) + a[c] * torch.clamp(x[:, c], max=0)
        assert torch.equal(top.data[:, c], want)


def test_matches_leaky_relu_with_slope_a_quarter() -> None:
    x, dy = caffe_input(), caffe_input(std=3.0).flip(1)
    prelu, prelu_bottom, prelu_top = run_forward("PReLU", "", x)
    relu, relu_bottom, relu_top = run_forward("ReLU", "relu_param { negative_slope: 0.25 }", x)
    assert torch.equal(prelu_top.data, relu_top.data)
    prelu_dx = run_backward(prelu, prelu_bottom, prelu_top, dy)
    assert torch.equal(prelu_dx, run_backward(relu, relu_bottom, relu_top, dy))


def test_slope_gradient_sums_over_batch_and_space() -> None:
    x, dy = caffe_input(), caffe_input(std=2.0).flip(0)
    layer, bottom, top = run_forward("PReLU", "", x.double())
    run_backward(layer, bottom, top, dy.double())
    want = torch.where(x <= 0, dy * x, 0).double().sum(dim=(0, 2, 3))
    torch.testing.assert_close(layer.blobs[0].diff, want)


def test_in_place_keeps_a_copy_of_the_input_for_the_slope_gradient() -> None:
    x, dy = caffe_input().double(), caffe_input(std=2.0).flip(0).double()
    snippet = f"prelu_param {{ {GAUSSIAN} }}"
    layer, bottom, top = run_forward("PReLU", snippet, x)
    dx = run_backward(layer, bottom, top, dy)
    layer2, blob, _ = run_forward("PReLU", snippet, x, in_place=True)
    assert torch.equal(blob.data, top.data)
    assert torch.equal(run_backward(layer2, blob, blob, dy), dx)
    assert torch.equal(layer2.blobs[0].diff, layer.blobs[0].diff)


@pytest.mark.parametrize("shape", [(5,), (1, 2, 3, 4, 5)])
def test_bottom_needs_two_to_four_axes(shape: tuple[int, ...]) -> None:
    with pytest.raises(LayerError, match="2 to 4 axes"):
        run_forward("PReLU", "", torch.zeros(shape))


def test_loaded_slopes_must_match_the_channels() -> None:
    param = caffe_pb2.LayerParameter(name="p", type="PReLU")
    param.blobs.add().shape.dim.append(4)
    param.blobs[0].data.extend([0.1] * 4)
    with pytest.raises(LayerError, match="'p'.*slope blob has 4 values, expected 3"):
        PReLULayer(param).setup([Blob((2, 3, 4))], [Blob()])


def test_channel_change_after_setup_is_reported() -> None:
    layer, bottom, top = run_forward("PReLU", "", caffe_input())
    bottom.reshape((2, 5, 4, 5))
    with pytest.raises(LayerError, match="5 channels"):
        layer.run_forward([bottom], [top])
