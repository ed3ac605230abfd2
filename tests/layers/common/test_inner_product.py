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
