from __future__ import annotations

import pytest
import torch

from recaffe.blob import Blob
from recaffe.io import prototxt
from recaffe.layer import LayerError
from recaffe.layers.vision.deconvolution import DeconvolutionLayer
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_case import LayerCase
from tests.layers.vision.reference import conv_geometry, naive_deconv

FILLERS = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'


def deconv(fields: str) -> str:
    return f"convolution_param {{ {fields} {FILLERS} }}"


class DeconvCase(LayerCase):
    """Every top is the naive deconvolution (input pixels scattering W·x) of its bottom."""

    def reference(self, bottoms, blobs, param):
        p = param.convolution_param
        axis = p.axis % bottoms[0].dim()
        bias = blobs[1] if p.bias_term else None
        tops = []
        for x in bottoms:
            flat = x.reshape(-1, *x.shape[axis:])
            y = naive_deconv(flat, blobs[0], bias, conv_geometry(p, flat.dim() - 2), p.group)
            tops.append(y.reshape(*x.shape[:axis], *y.shape[1:]))
        return tops


class TestDeconvolution(DeconvCase):
    layer_type = "Deconvolution"
    bottom_shapes = [(2, 4, 3, 4)]
    params = [
        deconv("num_output: 3 kernel_size: 3 stride: 2"),
        deconv("num_output: 3 kernel_size: 4 stride: 2 pad: 1"),
        deconv("num_output: 2 kernel_size: 2"),
        deconv("num_output: 4 kernel_size: 3 stride: 2 group: 2 bias_term: false"),
        deconv("num_output: 2 kernel_size: 2 dilation: 2 stride: 2 pad: 1"),
        deconv("num_output: 2 kernel_h: 3 kernel_w: 2 stride_h: 1 stride_w: 3 pad_h: 2 pad_w: 0"),
        deconv("num_output: 2 kernel_size: 1 stride: 3 pad: 1"),  # pad >= kernel is allowed
    ]


class TestDeconvolutionMultiBottom(DeconvCase):
    layer_type = "Deconvolution"
    bottom_shapes = [(1, 2, 3, 3), (1, 2, 3, 3)]
    num_tops = 2
    params = [deconv("num_output: 2 kernel_size: 2 stride: 2")]


class TestDeconvolution3D(DeconvCase):
    layer_type = "Deconvolution"
    bottom_shapes = [(1, 2, 2, 3, 2)]
    params = [deconv("num_output: 2 kernel_size: 2 stride: 2 pad: 1 group: 2")]


class TestDeconvolution4D(DeconvCase):
    """More than 3 spatial axes: col2im + matmul."""

    layer_type = "Deconvolution"
    bottom_shapes = [(1, 2, 2, 2, 3, 2)]
    params = [deconv("num_output: 1 kernel_size: 2 stride: 2 stride: 1 stride: 1 stride: 2")]


def make(fields: str, *shapes: tuple[int, ...]) -> tuple[DeconvolutionLayer, list[Blob], list[Blob]]:
    param = prototxt.parse_text(f"convolution_param {{ {fields} }}",
                                caffe_pb2.LayerParameter(name="deconv", type="Deconvolution"))
    layer = DeconvolutionLayer(param)
    bottom, top = [Blob(shape) for shape in shapes], [Blob() for _ in shapes]
    layer.setup(bottom, top)
    return layer, bottom, top


def test_shapes() -> None:
    """Caffe's TestSetup: (2, 3, 6, 4) with kernel 3, stride 2 gives 13 x 9; group keeps it."""
    layer, _, top = make("num_output: 4 kernel_size: 3 stride: 2", (2, 3, 6, 4), (2, 3, 6, 4))
    assert top[0].shape == top[1].shape == (2, 4, 13, 9)
    assert layer.blobs[0].shape == (3, 4, 3, 3)  # (C_in, C_out / group, k, k)
    layer, _, top = make("num_output: 3 group: 3 kernel_size: 3 stride: 2", (2, 3, 6, 4))
    assert top[0].shape == (2, 3, 13, 9) and layer.blobs[0].shape == (3, 1, 3, 3)


def test_overlapping_filters_accumulate() -> None:
    """Caffe's TestSimpleDeconvolution: ones through ones give 3 + 0.1, more where windows overlap."""
    fillers = 'weight_filler { type: "constant" value: 1 } bias_filler { type: "constant" value: 0.1 }'
    layer, bottom, top = make(f"num_output: 4 kernel_size: 3 stride: 2 {fillers}", (2, 3, 6, 4))
    bottom[0].data.fill_(1)
    layer.run_forward(bottom, top)
    h = torch.arange(13)
    w = torch.arange(9)
    h_overlap = ((h % 2 == 0) & (h > 0) & (h < 12)).double()
    w_overlap = ((w % 2 == 0) & (w > 0) & (w < 8)).double()
    expected = 3.1 + 3 * (h_overlap[:, None] + w_overlap[None, :]) + 3 * h_overlap[:, None] * w_overlap
    torch.testing.assert_close(top[0].data, expected.float().expand(2, 4, 13, 9))


def test_empty_output_is_refused() -> None:
    with pytest.raises(LayerError, match="empty or negative"):
        make("num_output: 2 kernel_size: 1 pad: 1", (1, 2, 1, 1))
