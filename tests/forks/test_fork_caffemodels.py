"""Fork caffemodels: LayerParameters written with a fork's own field numbers read back with every fork
parameter intact (SegNet, PSPNet, DenseNet), and pycaffe's ``caffe.Net`` forms read fork nets and
their weights (``dialect=`` named or detected)."""

from __future__ import annotations

import pathlib

import pytest
import torch

import caffe
import recaffe
from recaffe import forks
from recaffe.forks import reading
from recaffe.io import prototxt
from recaffe.proto import caffe_pb2

SEGNET_LAYERS = """
layer { name: "data" type: "DenseImageData" top: "data" top: "label"
  dense_image_data_param { source: "train.txt" batch_size: 4 rand_skip: 7 shuffle: true new_height: 360
    new_width: 480 is_color: false mean_file: "m.binaryproto" root_folder: "/d/" mirror: true crop_width: 320
    crop_height: 240 } }
layer { name: "bn" type: "BN" bottom: "data" top: "data"
  bn_param { bn_mode: INFERENCE scale_filler { type: "constant" value: 1 }
    shift_filler { type: "constant" value: 0.001 } } }
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" top: "mask"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "drop" type: "Dropout" bottom: "pool" top: "pool"
  dropout_param { dropout_ratio: 0.3 sample_weights_test: true } }
layer { name: "up" type: "Upsample" bottom: "pool" bottom: "mask" top: "up"
  upsample_param { scale: 2 pad_out_h: true pad_out_w: true upsample_h: 45 upsample_w: 60 } }
layer { name: "up2" type: "Upsample" bottom: "pool" bottom: "mask" top: "up2"
  upsample_param { scale_h: 2 scale_w: 3 } }
"""
PSPNET_LAYERS = """
layer { name: "bn" type: "BN" bottom: "data" top: "data"
  bn_param { slope_filler { type: "constant" value: 1 } bias_filler { type: "constant" value: 0 }
    momentum: 0.95 eps: 1e-4 frozen: true engine: CAFFE } }
layer { name: "interp" type: "Interp" bottom: "data" top: "i"
  interp_param { height: 9 width: 11 zoom_factor: 2 shrink_factor: 3 pad_beg: -1 pad_end: -2 } }
"""
DENSENET_LAYERS = """
layer { name: "p" type: "Pooling" bottom: "data" top: "p"
  pooling_param { pool: AVE kernel_size: 3 stride: 2 ceil_mode: false } }
layer { name: "q" type: "Pooling" bottom: "data" top: "q"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 ceil_mode: true } }
"""


@pytest.mark.parametrize(("dialect", "layers"), [("segnet", SEGNET_LAYERS), ("pspnet", PSPNET_LAYERS),
                                                 ("densenet", DENSENET_LAYERS)])
def test_fork_caffemodel_reads_back_with_every_fork_param(dialect: str, layers: str,
                                                          tmp_path: pathlib.Path) -> None:
    fork = forks.get_dialect(dialect)
    original = prototxt.parse_text(layers, fork.net_parameter())
    for i, layer in enumerate(original.layer):  # weights ride along, as in a trained model
        blob = layer.blobs.add()
        blob.shape.dim.extend([1, 2, 1, 1])
        blob.data.extend([0.5 + i, -1.25])
    path = tmp_path / f"{dialect}.caffemodel"
    prototxt.write_binary(path, original)  # the fork's own field numbers on the wire
    lowered = reading.read_net_binary(path, dialect)
    assert all(isinstance(layer, caffe_pb2.LayerParameter) for layer in lowered.layer)
    assert fork.raise_net(lowered) == original  # every fork field back, every value
    raised_again = fork.raise_net(prototxt.read_net_weights(path, dialect=dialect))
    assert [layer.blobs for layer in raised_again.layer] == [layer.blobs for layer in original.layer]


def test_segnet_numbers_collide_with_bvlc_and_faster_rcnn_the_dialect_decides(tmp_path: pathlib.Path) -> None:
    segnet = forks.get_dialect("segnet")
    net = segnet.net_parameter()
    net.layer.add(name="d", type="Dropout").dropout_param.sample_weights_test = True  # field 2
    net.layer.add(name="u", type="Upsample").upsample_param.scale = 4  # LayerParameter 137: BVLC embed_param
    path = tmp_path / "segnet.caffemodel"
    prototxt.write_binary(path, net)
    bvlc = prototxt.read_binary(path, caffe_pb2.NetParameter())
    assert bvlc.layer[1].embed_param.num_output == 4  # what BVLC's schema makes of the bytes
    frcnn = reading.read_net_binary(path, "faster_rcnn")
    assert forks.get_dialect("faster_rcnn").fork_param(frcnn.layer[0]).dropout_param.scale_train is True
    mine = reading.read_net_binary(path, "segnet")
    assert segnet.fork_param(mine.layer[0]).dropout_param.sample_weights_test is True
    assert segnet.fork_param(mine.layer[1]).upsample_param.scale == 4
    assert not mine.layer[1].HasField("embed_param")


TINY_SEGNET = """name: "tiny_segnet"
input: "data" input_dim: 2 input_dim: 3 input_dim: 6 input_dim: 8
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "msra" } } }
layer { name: "bn" type: "BN" bottom: "conv" top: "conv"
  bn_param { bn_mode: INFERENCE scale_filler { type: "gaussian" mean: 1 std: 0.2 }
    shift_filler { type: "gaussian" std: 0.1 } } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" top: "mask"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "drop" type: "Dropout" bottom: "pool" top: "pool" dropout_param { sample_weights_test: true } }
layer { name: "up" type: "Upsample" bottom: "pool" bottom: "mask" top: "up" upsample_param { scale: 2 } }
"""


def test_pycaffe_reads_fork_nets_and_their_caffemodels_in_every_form(tmp_path: pathlib.Path) -> None:
    proto = tmp_path / "tiny_segnet.prototxt"
    proto.write_text(TINY_SEGNET)
    recaffe.set_random_seed(2)
    trained = recaffe.Net(str(proto), recaffe.TEST)
    weights = tmp_path / "tiny_segnet.caffemodel"
    prototxt.write_binary(weights, forks.get_dialect("segnet").raise_net(trained.to_proto()))  # as the fork
    nets = [
        caffe.Net(str(proto), caffe.TEST, weights=str(weights)),  # dialect detected
        caffe.Net(str(proto), caffe.TEST, weights=str(weights), dialect="segnet"),
        caffe.Net(str(proto), str(weights), caffe.TEST),  # the deprecated form
    ]
    for net in nets:
        for name in ("conv", "bn"):
            for mine, theirs in zip(net.params[name], trained.layer_by_name(name).blobs):
                assert torch.equal(torch.from_numpy(mine.data), theirs.data)
        assert type(net._net.layer_by_name("up")).__module__ == "recaffe.forks.segnet.upsample"
    x = torch.randn(2, 3, 6, 8, generator=torch.Generator().manual_seed(0)).numpy()
    nets[0].blobs["data"].data[...] = x
    caffe.set_random_seed(5)
    first = nets[0].forward()["up"].copy()
    caffe.set_random_seed(5)
    assert (nets[0].forward()["up"] == first).all()  # MC dropout at test, repeated by the seed
    assert (first == 0).mean() > 0.75  # 3 of 4 unpooled positions are empty, plus the dropped units
    with pytest.raises(reading.UnknownFieldsError, match="upsample_param is from the SegNet fork"):
        caffe.Net(str(proto), caffe.TEST, dialect="pspnet")
