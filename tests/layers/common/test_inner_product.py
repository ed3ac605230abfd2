from __future__ import annotations

import pytest
import torch

from recaffe.blob import Blob
from recaffe.layer import LayerError
from recaffe.layers.common.inner_product import InnerProductLayer
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_case import LayerCase

FILLERS = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'


class TestInnerProduct(LayerCase):
    layer_type = "InnerProduct"
    params = [
        f"inner_product_param {{ num_output: 4 {FILLERS} }}",
        f"inner_product_param {{ num_output: 4 bias_term: false {FILLERS} }}",
        f"inner_product_param {{ num_output: 3 transpose: true {FILLERS} }}",
        f"inner_product_param {{ num_output: 2 axis: 2 {FILLERS} }}",
    ]
    bottom_shapes = [(2, 3, 2, 3)]

    def reference(self, bottoms, blobs, param):
        (x,) = bottoms
        p = param.inner_product_param
        axis = p.axis % x.dim()
        w = blobs[0].t() if p.transpose else blobs[0]
        y = x.reshape(*x.shape[:axis], -1) @ w.t()
        return (y + blobs[1] if p.bias_term else y,)


def test_weight_shape_mismatch_is_reported() -> None:
    param = caffe_pb2.LayerParameter(name="fc", type="InnerProduct")
    param.inner_product_param.num_output = 4
    param.blobs.add().shape.dim.extend([4, 7])
    param.blobs[0].data.extend([0.0] * 28)
    layer = InnerProductLayer(param)
    with pytest.raises(LayerError, match="'fc'.*weight blob has shape"):
        layer.setup([Blob((2, 6))], [Blob()])


def test_input_size_change_is_reported() -> None:
    param = caffe_pb2.LayerParameter(name="fc", type="InnerProduct")
    param.inner_product_param.num_output = 4
    layer = InnerProductLayer(param)
    bottom, top = [Blob((2, 6))], [Blob()]
    layer.setup(bottom, top)
    bottom[0].reshape((2, 5))
    with pytest.raises(LayerError, match="input size 5"):
        layer.run_forward(bottom, top)


def test_transpose_stores_k_by_n() -> None:
    param = caffe_pb2.LayerParameter(name="fc", type="InnerProduct")
    param.inner_product_param.num_output = 4
    param.inner_product_param.transpose = True
    layer = InnerProductLayer(param)
    layer.setup([Blob((2, 6))], [Blob()])
    assert layer.blobs[0].shape == (6, 4)
    assert torch.count_nonzero(layer.blobs[0].data) == 0  # default filler: constant 0



@pytest.mark.parametrize("bias_term", [True, False])
def test_large_weights_take_onednn_with_the_same_numbers(bias_term: bool, monkeypatch) -> None:
    """Above ONEDNN_MIN_WEIGHTS the CPU forward runs oneDNN's inner product; same values."""
    from recaffe.layers.common import inner_product

    param = caffe_pb2.LayerParameter(name="fc", type="InnerProduct")
    param.inner_product_param.num_output = 6
    param.inner_product_param.bias_term = bias_term
    param.inner_product_param.weight_filler.type = "gaussian"
    param.inner_product_param.bias_filler.type = "gaussian"
    x = torch.randn(5, 4, 3, generator=torch.Generator().manual_seed(0))
    layer, bottom, top = InnerProductLayer(param), [Blob(x.shape)], [Blob()]
    layer.setup(bottom, top)
    bottom[0].data.copy_(x)
    tops = []
    for threshold in (1 << 40, 1):
        monkeypatch.setattr(inner_product, "ONEDNN_MIN_WEIGHTS", threshold)
        layer.run_forward(bottom, top)
        tops.append(top[0].data.clone())
    onednn = inner_product.onednn_for(x.reshape(5, 12), layer.blobs[0].data)
    assert (onednn is not None) == torch.backends.mkldnn.is_available()
    torch.testing.assert_close(tops[1], tops[0], rtol=1e-6, atol=1e-6)
    expected = x.reshape(5, 12) @ layer.blobs[0].data.t() + (layer.blobs[1].data if bias_term else 0)
    torch.testing.assert_close(tops[0], expected)


def test_without_onednns_private_op_the_gemm_path_serves(monkeypatch) -> None:
    """A torch without ``torch.ops.mkldnn._linear_pointwise`` (it is private) still runs large
    inner products, through the GEMM path."""
    from recaffe.layers.common import inner_product

    monkeypatch.setattr(inner_product, "ONEDNN_LINEAR", "_no_such_op_in_this_torch")
    monkeypatch.setattr(inner_product, "ONEDNN_MIN_WEIGHTS", 1)
    inner_product.onednn_linear.cache_clear()
    try:
        assert inner_product.onednn_linear() is None
        param = caffe_pb2.LayerParameter(name="fc", type="InnerProduct")
        param.inner_product_param.num_output = 3
        param.inner_product_param.weight_filler.type = "gaussian"
        layer, bottom, top = InnerProductLayer(param), [Blob((2, 4))], [Blob()]
        layer.setup(bottom, top)
        bottom[0].data.normal_(generator=torch.Generator().manual_seed(1))
        layer.run_forward(bottom, top)
        w, b = layer.blobs[0].data, layer.blobs[1].data
        torch.testing.assert_close(top[0].data, bottom[0].data @ w.t() + b)
    finally:
        inner_product.onednn_linear.cache_clear()
