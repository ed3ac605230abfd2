"""Shape arithmetic checked at Reshape (recaffe.layer, recaffe.blob): huge, overflowing, zero and negative
sizes fail with the layer's name and the prototxt field they came from, before torch or numpy sees them."""

from __future__ import annotations

import pytest
from google.protobuf import text_format

from recaffe import Net, errors
from recaffe.layer import LayerError
from recaffe.proto import caffe_pb2

INPUT = 'layer {{ name: "in" type: "Input" top: "x" input_param {{ shape {{ {dims} }} }} }}\n'


def build(text: str) -> Net:
    return Net(text_format.Parse(text, caffe_pb2.NetParameter()), phase=caffe_pb2.TEST)


@pytest.fixture(autouse=True)
def one_gigabyte(monkeypatch) -> None:
    monkeypatch.setattr(errors, "available_memory", lambda: 10**9)


@pytest.mark.parametrize("net, message", [
    (INPUT.format(dims="dim: 1 dim: 9223372036854775807"),
     "layer 'in' (Input): blob shape (1, 9223372036854775807) needs 36893488147419103228 bytes, more than "
     "the 1000000000 bytes of memory available (from input_param.shape.dim: 9223372036854775807)"),
    (INPUT.format(dims="dim: 1 dim: 100") + 'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" '
     'inner_product_param { num_output: 1000000000 } }',
     "layer 'ip' (InnerProduct): blob shape (1000000000, 100) needs 400000000000 bytes, more than the "
     "1000000000 bytes of memory available (from inner_product_param.num_output: 1000000000)"),
    (INPUT.format(dims="dim: 1 dim: 1 dim: 8 dim: 8") + 'layer { name: "conv" type: "Convolution" '
     'bottom: "x" top: "y" convolution_param { num_output: 2 kernel_size: 3 pad: 2000000000 } }',
     "layer 'conv' (Convolution): blob shape (1, 2, 4000000006, 4000000006) holds 32000000096000000072 "
     "values, which overflows a 64-bit count (from convolution_param.pad: 2000000000)"),
    (INPUT.format(dims="dim: 0 dim: 100"),
     "layer 'in' (Input): top 'x' has shape (0, 100), which holds no values (a size of 0) "
     "(from input_param.shape.dim: 0)"),
    (INPUT.format(dims="dim: 1 dim: -3"),
     "layer 'in' (Input): negative dimension in blob shape (1, -3) (from input_param.shape.dim: -3)"),
])
def test_impossible_shapes_name_the_layer_and_field(net, message) -> None:
    with pytest.raises(LayerError) as info:
        build(net)
    assert str(info.value) == message


def test_a_zero_batch_into_inner_product(one_gigabyte) -> None:
    net = build(INPUT.format(dims="dim: 2 dim: 100") + 'layer { name: "ip" type: "InnerProduct" '
                'bottom: "x" top: "y" inner_product_param { num_output: 10 } }')
    net.blobs["x"].reshape((0, 100))
    with pytest.raises(LayerError) as info:
        net.forward()
    assert str(info.value) == ("layer 'ip' (InnerProduct): bottom 'x' has shape (0, 100), which holds no "
                               "values (a size of 0)")


def test_a_huge_stride_is_just_a_stride() -> None:
    # Caffe's int arithmetic overflows here; recaffe's does not: one output position per axis
    net = build(INPUT.format(dims="dim: 1 dim: 1 dim: 8 dim: 8") + 'layer { name: "conv" type: '
                '"Convolution" bottom: "x" top: "y" convolution_param { num_output: 2 kernel_size: 3 '
                'stride: 2147483648 } }')
    net.forward()
    assert net.blobs["y"].shape == (1, 2, 1, 1)
