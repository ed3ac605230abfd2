from __future__ import annotations

import pytest
import torch

from recaffe.blob import Blob
from recaffe.io import prototxt
from recaffe.layer import LayerError
from recaffe.layers.vision.im2col import Im2colLayer
from recaffe.math.im2col import Geometry, col2im_nd, im2col_nd
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_case import LayerCase
from tests.layers.vision.reference import conv_geometry, naive_im2col


class Im2colCase(LayerCase):
    layer_type = "Im2col"

    def reference(self, bottoms, blobs, param):
        (x,) = bottoms
        p = param.convolution_param
        axis = p.axis % x.dim()
        flat = x.reshape(-1, *x.shape[axis:])
        cols = naive_im2col(flat, conv_geometry(p, flat.dim() - 2))
        return (cols.reshape(*x.shape[:axis], *cols.shape[1:]),)


class TestIm2col(Im2colCase):
    bottom_shapes = [(2, 3, 6, 5)]
    params = [
        "convolution_param { kernel_size: 3 stride: 2 }",
        "convolution_param { kernel_size: 3 stride: 2 pad: 1 dilation: 2 }",
        "convolution_param { kernel_size: 3 stride: 2 force_nd_im2col: true }",
        "convolution_param { kernel_h: 3 kernel_w: 2 stride_h: 1 stride_w: 2 pad_h: 0 pad_w: 1 }",
        "convolution_param { kernel_size: 4 stride: 2 }",  # W: (5 − 4) / 2 truncates: overhang
        "convolution_param { kernel_size: 2 axis: 0 }",  # one image, 2 channels, 3 spatial axes
    ]


class TestIm2col3D(Im2colCase):
    bottom_shapes = [(1, 2, 3, 4, 3)]
    params = ["convolution_param { kernel_size: 2 stride: 2 stride: 1 stride: 1 pad: 1 }"]


class TestIm2col1D(Im2colCase):
    bottom_shapes = [(2, 3, 7)]
    params = ["convolution_param { kernel_size: 3 stride: 2 dilation: 2 pad: 2 }"]


def make(fields: str, shape: tuple[int, ...]) -> tuple[Im2colLayer, list[Blob], list[Blob]]:
    param = prototxt.parse_text(f"convolution_param {{ {fields} }}",
                                caffe_pb2.LayerParameter(name="im2col", type="Im2col"))
    layer = Im2colLayer(param)
    bottom, top = [Blob(shape)], [Blob()]
    layer.setup(bottom, top)
    return layer, bottom, top


def test_setup_shape() -> None:
    """Caffe's TestSetup: kernel 3, stride 2, dilation 3 on 10x11."""
    _, _, top = make("kernel_size: 3 stride: 2 dilation: 3", (2, 3, 10, 11))
    assert top[0].shape == (2, 27, 2, 3)


def test_top_left_block() -> None:
    """Caffe's TestForward: column (0, 0) lists the first window, channel-major."""
    layer, bottom, top = make("kernel_size: 3 stride: 2", (2, 3, 6, 5))
    bottom[0].data.copy_(torch.randn(2, 3, 6, 5))
    layer.run_forward(bottom, top)
    expected = bottom[0].data[0, :, :3, :3].reshape(-1)
    assert torch.equal(top[0].data[0, :, 0, 0], expected)


@pytest.mark.parametrize("geometry", [
    Geometry((3, 2), (2, 1), (1, 0), (1, 2)),
    Geometry((4, 4), (3, 3), (0, 1), (1, 1)),  # windows overhanging the far edge
    Geometry((2, 2, 2), (1, 2, 1), (1, 0, 0), (1, 1, 2)),
    Geometry((), (), (), ()),
])
def test_col2im_is_the_adjoint_of_im2col(geometry: Geometry) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, *[5, 6, 4][: len(geometry.kernel)], generator=generator, dtype=torch.float64)
    cols = im2col_nd(x, geometry)
    c = torch.randn(cols.shape, generator=generator, dtype=torch.float64)
    lhs = (cols * c).sum()
    rhs = (x * col2im_nd(c, x.shape[2:], geometry)).sum()
    torch.testing.assert_close(lhs, rhs)


def test_needs_a_spatial_axis() -> None:
    with pytest.raises(LayerError, match="at least one spatial axis"):
        make("kernel_size: 1 axis: -1", (2, 3))
    with pytest.raises(LayerError, match="kernel_size must be specified"):
        make("stride: 1", (2, 3, 4, 4))
