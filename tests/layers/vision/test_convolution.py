from __future__ import annotations

import pytest
import torch

from recaffe.blob import Blob
from recaffe.io import prototxt
from recaffe.layer import LayerError
from recaffe.layers.vision.convolution import ConvolutionLayer
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_case import LayerCase
from tests.layers.vision.reference import conv_geometry, naive_conv

FILLERS = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'


def conv(fields: str) -> str:
    return f"convolution_param {{ {fields} {FILLERS} }}"


class ConvCase(LayerCase):
    """Every top is the naive convolution of its bottom (Caffe's loops over kernel offsets)."""

    def reference(self, bottoms, blobs, param):
        p = param.convolution_param
        axis = p.axis % bottoms[0].dim()
        bias = blobs[1] if p.bias_term else None
        tops = []
        for x in bottoms:
            flat = x.reshape(-1, *x.shape[axis:])  # earlier axes are batch
            geometry = conv_geometry(p, flat.dim() - 2)
            y = naive_conv(flat, blobs[0], bias, geometry, p.group)
            tops.append(y.reshape(*x.shape[:axis], *y.shape[1:]))
        return tops


class TestConvolution(ConvCase):
    layer_type = "Convolution"
    bottom_shapes = [(2, 3, 5, 4)]
    params = [
        conv("num_output: 2 kernel_size: 3"),
        conv("num_output: 2 kernel_size: 3 stride: 2 pad: 1"),
        conv("num_output: 3 kernel_size: 1"),  # Caffe's 1x1 case skips im2col
        conv("num_output: 3 bias_term: false kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1"),
        conv("num_output: 6 kernel_size: 3 stride: 2 group: 3"),
        conv("num_output: 2 kernel_size: 2 dilation: 2 pad: 2"),
        conv("num_output: 2 kernel_size: 3 kernel_size: 2 stride: 1 stride: 2 pad: 0 pad: 1 "
             "dilation: 1 dilation: 2"),
        # W: (4 − 5) / 3 truncates to 0, so one window that overhangs the input (zeros).
        conv("num_output: 2 kernel_size: 5 stride: 3"),
        conv("num_output: 2 kernel_size: 2 dilation: 0"),  # Caffe allows it: all taps coincide
    ]


class TestConvolutionMultiBottom(ConvCase):
    layer_type = "Convolution"
    bottom_shapes = [(1, 2, 4, 3), (1, 2, 4, 3)]
    num_tops = 2
    params = [conv("num_output: 2 kernel_size: 3 pad: 1")]


class TestConvolution1D(ConvCase):
    layer_type = "Convolution"
    bottom_shapes = [(2, 4, 7)]
    params = [conv("num_output: 4 kernel_size: 3 stride: 2 pad: 1 group: 2 dilation: 2")]


class TestConvolution3D(ConvCase):
    layer_type = "Convolution"
    bottom_shapes = [(1, 3, 4, 3, 4)]
    params = [
        conv("num_output: 2 kernel_size: 3 stride: 2"),
        conv("num_output: 1 kernel_size: 2 dilation: 2 pad: 1"),
        conv("num_output: 3 kernel_size: 2 kernel_size: 3 kernel_size: 1 group: 3 force_nd_im2col: true"),
    ]


class TestConvolution4D(ConvCase):
    """More than 3 spatial axes: the im2col + matmul path."""

    layer_type = "Convolution"
    bottom_shapes = [(1, 2, 3, 3, 2, 3)]
    params = [conv("num_output: 2 kernel_size: 2 pad: 1 stride: 2 stride: 1 stride: 1 stride: 2")]


class TestConvolutionAxis(ConvCase):
    """Axes before ``axis`` are independent images; axis 3 of a 4-D blob leaves no spatial axis."""

    layer_type = "Convolution"
    bottom_shapes = [(2, 3, 4, 5)]
    params = [conv("num_output: 2 kernel_size: 3 axis: 2"), conv("num_output: 3 axis: 3"),
              conv("num_output: 2 kernel_size: 2 axis: -2")]


def make(fields: str, *shapes: tuple[int, ...], blobs=()) -> tuple[ConvolutionLayer, list[Blob], list[Blob]]:
    param = caffe_pb2.LayerParameter(name="conv", type="Convolution")
    prototxt.parse_text(f"convolution_param {{ {fields} }}", param)
    for data in blobs:
        proto = param.blobs.add()
        proto.shape.dim.extend(data.shape)
        proto.data.extend(data.reshape(-1).tolist())
    layer = ConvolutionLayer(param)
    bottom = [Blob(shape) for shape in shapes]
    top = [Blob() for _ in shapes]
    layer.setup(bottom, top)
    return layer, bottom, top


def test_shapes_and_default_fillers() -> None:
    layer, _, top = make("num_output: 4 kernel_size: 3 stride: 2", (2, 3, 6, 5))
    assert top[0].shape == (2, 4, 2, 2)
    assert layer.blobs[0].shape == (4, 3, 3, 3) and layer.blobs[1].shape == (4,)
    assert not layer.blobs[0].data.any() and not layer.blobs[1].data.any()  # constant 0
    layer, _, top = make("num_output: 3 group: 3 kernel_size: 3 stride: 2", (2, 3, 6, 5))
    assert layer.blobs[0].shape == (3, 1, 3, 3) and top[0].shape == (2, 3, 2, 2)


def test_sobel_is_separable() -> None:
    """Caffe's TestSobelConvolution: the 3x3 Sobel filter equals a [1 2 1]ᵀ then [-1 0 1] pass."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 4)
    sobel = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]).expand(1, 3, 3, 3)
    full, bottom, top = make("num_output: 1 bias_term: false kernel_size: 3 stride: 2", x.shape,
                             blobs=[sobel])
    bottom[0].data.copy_(x)
    full.run_forward(bottom, top)
    column = torch.tensor([1.0, 2, 1]).view(1, 1, 3, 1).expand(1, 3, 3, 1)
    first, b1, t1 = make("num_output: 1 bias_term: false kernel_h: 3 kernel_w: 1 stride_h: 2 stride_w: 1",
                         x.shape, blobs=[column])
    b1[0].data.copy_(x)
    first.run_forward(b1, t1)
    row = torch.tensor([-1.0, 0, 1]).view(1, 1, 1, 3)
    second, b2, t2 = make("num_output: 1 bias_term: false kernel_h: 1 kernel_w: 3 stride_h: 1 stride_w: 2",
                          t1[0].shape, blobs=[row])
    b2[0].data.copy_(t1[0].data)
    second.run_forward(b2, t2)
    torch.testing.assert_close(top[0].data, t2[0].data)


def test_hand_computed_values() -> None:
    """Weights of ones over a 3x3 ramp with pad 1: each output is its window's sum, plus bias."""
    weight, bias = torch.ones(1, 1, 3, 3), torch.tensor([0.5])
    layer, bottom, top = make("num_output: 1 kernel_size: 3 pad: 1 stride: 2", (1, 1, 3, 3),
                              blobs=[weight, bias])
    bottom[0].data.copy_(torch.arange(9.0).view(1, 1, 3, 3))
    layer.run_forward(bottom, top)
    assert top[0].data.view(-1).tolist() == [8.5, 12.5, 20.5, 24.5]


@pytest.mark.parametrize(("fields", "message"), [
    ("kernel_size: 3", "num_output must be > 0"),
    ("num_output: 4 kernel_size: 3 group: 2", "multiples of group"),
    ("num_output: 4 kernel_size: 3 group: 3", "multiples of group"),
    ("num_output: 3 kernel_size: 3 group: 0", "group must be > 0"),
    ("num_output: 2", "kernel_size must be specified once"),
    ("num_output: 2 kernel_size: 3 kernel_size: 3 kernel_size: 3", "specified 3 times; 2 spatial"),
    ("num_output: 2 kernel_size: 0", "must be nonzero"),
    ("num_output: 2 kernel_h: 3", "must be nonzero"),
    ("num_output: 2 kernel_size: 3 stride: 0", "must be nonzero"),
    ("num_output: 2 kernel_size: 3 kernel_h: 3 kernel_w: 3", "not both"),
    ("num_output: 2 kernel_size: 3 pad: 1 pad_h: 1", "not both"),
    ("num_output: 2 kernel_size: 3 stride: 1 stride_w: 1", "not both"),
    ("num_output: 2 kernel_size: 3 dilation: 1 dilation: 1 dilation: 1", "dilation must be specified"),
    ("num_output: 2 kernel_size: 9", "empty or negative"),
])
def test_invalid_parameters_are_refused(fields: str, message: str) -> None:
    with pytest.raises(LayerError, match=message):
        make(fields, (2, 3, 4, 4))


def test_h_w_forms_need_two_spatial_axes() -> None:
    with pytest.raises(LayerError, match="only be used for 2D"):
        make("num_output: 2 kernel_h: 3 kernel_w: 3", (2, 3, 4, 4, 4))


def test_bottom_checks() -> None:
    with pytest.raises(LayerError, match="shape mismatch"):
        make("num_output: 2 kernel_size: 3", (2, 3, 4, 4), (2, 3, 5, 4))
    layer, bottom, top = make("num_output: 2 kernel_size: 3", (2, 3, 4, 4))
    bottom[0].reshape(2, 4, 4, 4)
    with pytest.raises(LayerError, match="4 channels"):
        layer.run_forward(bottom, top)


def test_loaded_weights_are_checked() -> None:
    with pytest.raises(LayerError, match="incorrect weight shape"):
        make("num_output: 2 kernel_size: 3", (2, 3, 4, 4), blobs=[torch.zeros(2, 3, 2, 2), torch.zeros(2)])
    with pytest.raises(LayerError, match="number of weight blobs"):
        make("num_output: 2 kernel_size: 3", (2, 3, 4, 4), blobs=[torch.zeros(2, 3, 3, 3)])
