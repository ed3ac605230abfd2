"""caffe.net_spec: NetSpec naming, anonymous names, keyword mapping, ntop, in_place, and nets
built from the generated protos."""

from __future__ import annotations

import numpy as np
import pytest

import caffe
from caffe import layers as L
from caffe import params as P
from caffe.net_spec import param_name_dict
from caffe.proto import caffe_pb2


def lenet(n: caffe.NetSpec | None, batch: int = 8):
    """LeNet on DummyData; with ``n`` the tops are named after attributes, else anonymous."""
    spec = n if n is not None else caffe.NetSpec()
    tops = {}
    tops["data"], tops["label"] = L.DummyData(shape=[dict(dim=[batch, 1, 28, 28]), dict(dim=[batch])],
                                              transform_param=dict(scale=1.0 / 255), ntop=2)
    xavier = dict(type="xavier")
    tops["conv1"] = L.Convolution(tops["data"], kernel_size=5, num_output=20, weight_filler=xavier)
    tops["pool1"] = L.Pooling(tops["conv1"], kernel_size=2, stride=2, pool=P.Pooling.MAX)
    tops["conv2"] = L.Convolution(tops["pool1"], kernel_size=5, num_output=50, weight_filler=xavier)
    tops["pool2"] = L.Pooling(tops["conv2"], kernel_size=2, stride=2, pool=P.Pooling.MAX)
    tops["ip1"] = L.InnerProduct(tops["pool2"], num_output=500, weight_filler=xavier)
    tops["relu1"] = L.ReLU(tops["ip1"], in_place=True)
    tops["ip2"] = L.InnerProduct(tops["relu1"], num_output=10, weight_filler=xavier)
    tops["loss"] = L.SoftmaxWithLoss(tops["ip2"], tops["label"])
    if n is None:
        return tops["loss"].to_proto()
    for name, top in tops.items():
        setattr(spec, name, top)
    return spec.to_proto()


def test_named_lenet_proto() -> None:
    proto = lenet(caffe.NetSpec())
    assert [layer.name for layer in proto.layer] == [
        "data", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2", "loss"]
    assert list(proto.layer[0].top) == ["data", "label"]
    relu = proto.layer[6]
    assert list(relu.bottom) == list(relu.top) == ["ip1"]
    assert list(proto.layer[8].bottom) == ["ip2", "label"]
    conv = proto.layer[1].convolution_param
    assert list(conv.kernel_size) == [5] and conv.num_output == 20 and conv.weight_filler.type == "xavier"
    assert proto.layer[2].pooling_param.pool == caffe_pb2.PoolingParameter.MAX
    assert proto.layer[0].transform_param.scale == pytest.approx(1 / 255)
    assert [list(s.dim) for s in proto.layer[0].dummy_data_param.shape] == [[8, 1, 28, 28], [8]]


def test_anonymous_lenet_names() -> None:
    proto = lenet(None)
    assert [layer.name for layer in proto.layer] == [
        "DummyData1", "Convolution1", "Pooling1", "Convolution2", "Pooling2", "InnerProduct1", "ReLU1",
        "InnerProduct2", "SoftmaxWithLoss1"]
    assert list(proto.layer[0].top) == ["DummyData1", "DummyData2"]
    assert list(proto.layer[6].top) == ["InnerProduct1"]
    assert list(proto.layer[8].bottom) == ["InnerProduct2", "DummyData2"]


@pytest.mark.parametrize("named", [True, False])
def test_lenet_loads_with_nine_layers(write_net, named) -> None:
    net = caffe.Net(write_net(str(lenet(caffe.NetSpec() if named else None))), caffe.TEST)
    assert len(net.layers) == 9
    loss = net.forward()[net.outputs[0]]
    assert np.isfinite(loss)


def test_top_less_layers(write_net) -> None:
    n = caffe.NetSpec()
    n.data, n.data2 = L.DummyData(shape=dict(dim=3), ntop=2)
    n.silence_data = L.Silence(n.data, ntop=0)
    n.silence_data2 = L.Silence(n.data2, ntop=0)
    net = caffe.Net(write_net(str(n.to_proto())), caffe.TEST)
    assert net.forward() == {}


def test_top_less_layer_proto() -> None:
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2]))
    n.quiet = L.Silence(n.data, ntop=0)
    proto = n.to_proto()
    assert [(layer.name, list(layer.top)) for layer in proto.layer] == [("data", ["data"]), ("quiet", [])]
    anonymous = caffe.to_proto(L.ReLU(L.Input(shape=dict(dim=[2]))), L.Input(shape=dict(dim=[3])))
    assert [(layer.name, list(layer.top)) for layer in anonymous.layer] == [
        ("Input1", ["Input1"]), ("ReLU1", ["ReLU1"]), ("Input2", ["Input2"])]


def test_inputs_must_be_tops() -> None:
    pair = L.DummyData(ntop=2)
    with pytest.raises(TypeError, match=r"^Silence input 0 is not a Top \(type is <class 'tuple'>\)$"):
        L.Silence(pair, ntop=0)
    L.Silence(*pair, ntop=0)


def test_keyword_mapping() -> None:
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 3]))
    n["ip"] = L.InnerProduct(n.data, num_output=4, param=[dict(lr_mult=1), dict(lr_mult=2, decay_mult=0)],
                             loss_weight=0.5, include=dict(phase=caffe.TRAIN), bias_filler=dict(value=0.1))
    n.conv = L.Convolution(n.data, kernel_size=[3, 5], stride=2, dilation=2)
    n.deconv = L.Deconvolution(n.conv, num_output=3, kernel_size=4)  # maps to convolution_param
    proto = n.to_proto()
    ip = proto.layer[1]
    assert n["ip"] is n.ip
    assert [(p.lr_mult, p.decay_mult) for p in ip.param] == [(1, 1), (2, 0)]
    assert list(ip.loss_weight) == [0.5] and ip.include[0].phase == caffe.TRAIN
    assert ip.inner_product_param.bias_filler.value == pytest.approx(0.1)
    conv = proto.layer[2].convolution_param
    assert (list(conv.kernel_size), list(conv.stride), list(conv.dilation)) == ([3, 5], [2], [2])
    assert proto.layer[3].convolution_param.num_output == 3
    assert list(proto.layer[0].input_param.shape[0].dim) == [2, 3]


def test_to_proto_of_one_top_and_param_names() -> None:
    top = L.ReLU(L.Input(shape=dict(dim=[1])))
    proto = top.to_proto()
    assert [layer.type for layer in proto.layer] == ["Input", "ReLU"]
    names = param_name_dict()
    assert names["InnerProduct"] == "inner_product"
    assert names["Convolution"] == "convolution" and names["Pooling"] == "pooling"
    assert names["Python"] == "python" and names["HDF5Data"] == "hdf5_data"
    assert P.Pooling.AVE == caffe_pb2.PoolingParameter.AVE
    assert P.Eltwise.SUM == caffe_pb2.EltwiseParameter.SUM
    with pytest.raises(AttributeError):
        _ = caffe.NetSpec().missing


def test_generated_net_runs(write_net) -> None:
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[4, 3]))
    n.label = L.Input(shape=dict(dim=[4]))
    n.ip = L.InnerProduct(n.data, num_output=3, weight_filler=dict(type="gaussian", std=0.1))
    n.relu = L.ReLU(n.ip, in_place=True)
    n.loss = L.SoftmaxWithLoss(n.relu, n.label)
    net = caffe.Net(write_net(str(n.to_proto())), caffe.TRAIN)
    assert net.inputs == ["data", "label"] and net.outputs == ["loss"]
    out = net.forward(data=np.zeros((4, 3), np.float32), label=np.zeros(4, np.float32))
    assert out["loss"] == pytest.approx(np.log(3), rel=1e-5)
