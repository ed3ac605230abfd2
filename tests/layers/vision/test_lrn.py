from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recaffe.blob import Blob
from recaffe.io import prototxt
from recaffe.layer import LayerError
from recaffe.layers.vision.lrn import LRNLayer
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_case import LayerCase

WITHIN = caffe_pb2.LRNParameter.WITHIN_CHANNEL


def naive_lrn(x: torch.Tensor, p: caffe_pb2.LRNParameter) -> torch.Tensor:
    """Caffe's reference loops: a sum of squares over the (clipped) window, offset by offset."""
    n, half = p.local_size, (p.local_size - 1) // 2
    if p.norm_region == WITHIN:
        padded = F.pad(x * x, (half, half, half, half))
        h, w = x.shape[2:]
        total = sum(padded[:, :, i: i + h, j: j + w] for i in range(n) for j in range(n))
        scale = 1 + p.alpha / n**2 * total  # k does not enter; pool size n² includes padding
    else:
        padded = F.pad(x * x, (0, 0, 0, 0, half, half))
        total = sum(padded[:, i: i + x.shape[1]] for i in range(n))
        scale = p.k + p.alpha / n * total
    return x * scale.pow(-p.beta)


class TestLRN(LayerCase):
    layer_type = "LRN"
    bottom_shapes = [(2, 7, 3, 3)]  # Caffe's test shape
    params = [
        "",
        "lrn_param { local_size: 15 }",  # the window is wider than the channels
        "lrn_param { local_size: 3 alpha: 0.5 beta: 0.6 k: 2 }",
        "lrn_param { local_size: 1 alpha: 2 }",
        "lrn_param { norm_region: WITHIN_CHANNEL local_size: 3 }",
        "lrn_param { norm_region: WITHIN_CHANNEL local_size: 5 alpha: 0.3 beta: 1.5 k: 7 }",
    ]

    def reference(self, bottoms, blobs, param):
        return (naive_lrn(bottoms[0], param.lrn_param),)


def make(fields: str, shape: tuple[int, ...]) -> tuple[LRNLayer, list[Blob], list[Blob]]:
    param = prototxt.parse_text(fields, caffe_pb2.LayerParameter(name="norm", type="LRN"))
    layer = LRNLayer(param)
    bottom, top = [Blob(shape)], [Blob()]
    layer.setup(bottom, top)
    return layer, bottom, top


def test_hand_computed_across_channels() -> None:
    """Three channels of 1, 2, 3 with n = 3, α = 3, β = 1, k = 1: scale = 1 + Σ x² over neighbours."""
    layer, bottom, top = make("lrn_param { local_size: 3 alpha: 3 beta: 1 }", (1, 3, 1, 1))
    bottom[0].data.copy_(torch.tensor([1.0, 2, 3]).view(1, 3, 1, 1))
    layer.run_forward(bottom, top)
    expected = torch.tensor([1 / (1 + 5), 2 / (1 + 14), 3 / (1 + 13)])
    torch.testing.assert_close(top[0].data.view(-1), expected)


def test_within_channel_ignores_k() -> None:
    a, _, ta = make("lrn_param { norm_region: WITHIN_CHANNEL local_size: 3 k: 1 }", (1, 2, 4, 4))
    b, _, tb = make("lrn_param { norm_region: WITHIN_CHANNEL local_size: 3 k: 5 }", (1, 2, 4, 4))
    x = [Blob((1, 2, 4, 4))]
    x[0].data.copy_(torch.randn(1, 2, 4, 4))
    a.run_forward(x, ta)
    b.run_forward(x, tb)
    assert torch.equal(ta[0].data, tb[0].data)


@pytest.mark.parametrize(("fields", "shape", "message"), [
    ("lrn_param { local_size: 4 }", (1, 3, 2, 2), "odd values for local_size, got 4"),
    ("lrn_param { local_size: 0 }", (1, 3, 2, 2), "odd values"),
    ("", (1, 3, 2), "4 axes"),
])
def test_invalid_inputs_are_refused(fields: str, shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(LayerError, match=message):
        make(fields, shape)


@pytest.mark.parametrize(("fields", "shape"), [
    ("lrn_param { local_size: 5 alpha: 0.1 }", (3, 16, 70, 90)),  # pieces of two images
    ("lrn_param { local_size: 5 alpha: 0.1 }", (1, 64, 80, 80)),  # bands of rows of one image
    ("lrn_param { local_size: 3 alpha: 0.2 beta: 0.6 norm_region: WITHIN_CHANNEL }", (3, 16, 70, 90)),
])
def test_blobs_larger_than_a_tile_compute_piece_by_piece(fields: str, shape: tuple[int, ...]) -> None:
    """Forward and backward of a blob cut into pieces equal the reference and autograd."""
    layer, bottom, top = make(fields, shape)
    assert len(layer._tiles(shape)) > 1
    x = torch.randn(shape, generator=torch.Generator().manual_seed(3)).contiguous(
        memory_format=torch.channels_last)
    bottom[0].adopt_data(x)
    layer.run_forward(bottom, top)
    leaf = x.detach().clone().requires_grad_(True)
    expected = naive_lrn(leaf, layer.param.lrn_param)
    torch.testing.assert_close(top[0].data, expected.detach(), rtol=1e-5, atol=1e-6)
    dy = torch.randn(shape, generator=torch.Generator().manual_seed(4))
    top[0].diff.copy_(dy)
    layer.run_backward(top, [True], bottom)
    expected.backward(dy)
    torch.testing.assert_close(bottom[0].diff, leaf.grad, rtol=1e-4, atol=1e-5)
