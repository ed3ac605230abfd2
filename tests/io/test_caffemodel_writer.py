"""``Net.save`` streams the values (recaffe/io/caffemodel_writer.py): the file holds exactly the
bytes of ``to_proto().SerializeToString()``, reads back exactly, and saving holds no copy of the
weights."""

from __future__ import annotations

import pathlib

import pytest
import torch
from google.protobuf import text_format

import recaffe
from recaffe.io import caffemodel_writer
from recaffe.proto import caffe_pb2
from tests.io.test_caffemodel import big_net_param, traced_peak
from tests.io.test_formats import assert_params_equal, small_net

# parameters on both sides of ``blobs`` (loss_weight, param; include, phase, propagate_down, the
# layer's own param), shared weights, a BatchNorm (three blobs, one of shape (1,)), a layer without
# blobs and one with an empty parameter list
NET = """
name: "mixed"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 4 dim: 6 dim: 6 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" param { name: "w" lr_mult: 2 }
  include { phase: TEST } propagate_down: true
  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 0.1 }
    bias_filler { type: "uniform" min: -1 max: 1 } } }
BN
layer { name: "relu" type: "ReLU" bottom: "conv1" top: "conv1" phase: TEST }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2" param { name: "w" }
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "ip" type: "InnerProduct" bottom: "conv2" top: "ip" loss_weight: 0.5
  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.1 } } }
"""


BN = 'layer { name: "bn" type: "BatchNorm" bottom: "conv1" top: "conv1" }'
NET = NET.replace("BN", BN)


def mixed_net(dtype: torch.dtype = torch.float32) -> recaffe.Net:
    recaffe.set_random_seed(4)
    net = recaffe.Net(text_format.Parse(NET, caffe_pb2.NetParameter()), recaffe.TEST, dtype=dtype)
    for i, blob in enumerate(net.params):
        blob.diff.copy_(torch.full(blob.shape, float(i) + 0.25))
    net.layer_params["bn"][0].data.copy_(torch.tensor([0.5, -1.5, 2.0, 3e-8]))
    net.layer_params["bn"][2].data.fill_(7.0)
    return net


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("write_diff", [False, True])
def test_the_file_is_to_protos_serialisation(tmp_path: pathlib.Path, dtype: torch.dtype,
                                             write_diff: bool) -> None:
    net = mixed_net(dtype)
    path = tmp_path / "mixed.caffemodel"
    net.save(path, write_diff=write_diff)
    assert path.read_bytes() == net.to_proto(write_diff).SerializeToString()


def test_a_layer_whose_parameters_do_not_split_is_written_whole(tmp_path: pathlib.Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    net = mixed_net()
    monkeypatch.setattr(caffemodel_writer, "_split", lambda param: None)
    path = tmp_path / "whole.caffemodel"
    net.save(path)
    assert path.read_bytes() == net.to_proto().SerializeToString()


def test_deploy_mode_weights_save_as_the_plain_nets(tmp_path: pathlib.Path) -> None:
    """A deploy net's convolution weights are held channels-last after a forward: saved row-major."""
    param = text_format.Parse(NET.replace(BN, ""), caffe_pb2.NetParameter())  # (BatchNorm would fold)
    recaffe.set_random_seed(4)
    plain = recaffe.Net(param, recaffe.TEST)
    recaffe.set_random_seed(4)
    deploy = recaffe.Net(param, recaffe.TEST, optimize=True)
    deploy.forward()
    plain.save(tmp_path / "plain.caffemodel")
    deploy.save(tmp_path / "deploy.caffemodel")
    assert (tmp_path / "deploy.caffemodel").read_bytes() == (tmp_path / "plain.caffemodel").read_bytes()


def test_save_then_load_is_exact(tmp_path: pathlib.Path) -> None:
    source, target = small_net(seed=1), small_net(seed=2)
    path = tmp_path / "small.caffemodel"
    source.save(path)
    target.copy_trained_layers_from(path)
    assert_params_equal(source, target)


def test_saving_holds_no_copy_of_the_weights(tmp_path: pathlib.Path) -> None:
    """Python-side allocations while saving stay far below the weights (the protobuf path held the
    values' bytes and the serialised layer: 2x the largest layer)."""
    net = small_net(seed=1, param=big_net_param())
    path = tmp_path / "big.caffemodel"
    assert traced_peak(lambda: net.save(path)) < path.stat().st_size / 20
    assert path.read_bytes() == net.to_proto().SerializeToString()
