"""Caffe's legacy-format upgrades, prototxt to prototxt (after Caffe's test_upgrade_proto.cpp).

Every expectation compares whole messages through their text form, as Caffe compares
DebugString()s: field presence and order matter, not only values.
"""

from __future__ import annotations

import logging
import pathlib

import numpy as np
import pytest
from google.protobuf import text_format

import recaffe
from recaffe.io import legacy, prototxt, upgrade
from recaffe.proto import caffe_pb2

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"


def net(text: str) -> caffe_pb2.NetParameter:
    return text_format.Parse(text, caffe_pb2.NetParameter())


def fixture(name: str) -> caffe_pb2.NetParameter:
    return net((FIXTURES / name).read_text())


def assert_same(actual: caffe_pb2.NetParameter, expected: caffe_pb2.NetParameter) -> None:
    assert text_format.MessageToString(actual) == text_format.MessageToString(expected)


def v0_upgraded(param: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    assert legacy.upgrade_v0_net(out, "test.prototxt")
    return out


def v1_upgraded(param: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    assert legacy.upgrade_v1_net(out, "test.prototxt")
    return out


def check_padding_upgrade(before: caffe_pb2.NetParameter, after: caffe_pb2.NetParameter) -> None:
    once = legacy.upgrade_v0_padding_layers(before)
    assert_same(once, after)
    assert_same(legacy.upgrade_v0_padding_layers(once), once)  # idempotent


# ------------------------------------------------------------------ V0 fixtures
V0_DATA = """
layers { layer { name: "data" type: "data" source: "/tmp/train_db" meanfile: "/tmp/mean.binaryproto"
                 batchsize: 64 cropsize: 31 mirror: true }
         top: "data" top: "label" }
"""
V0_CONV = """
layers { layer { name: "%(name)s" type: "conv" num_output: 16 kernelsize: 5 stride: 2 %(pad)s
                 weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0.5 }
                 blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 }
         bottom: "%(bottom)s" top: "%(name)s" }
"""
V0_TAIL = """
layers { layer { name: "ip" type: "innerproduct" num_output: 10
                 weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "constant" value: 0 }
                 blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 }
         bottom: "conv1" top: "ip" }
layers { layer { name: "loss" type: "softmax_loss" } bottom: "ip" bottom: "label" }
"""
V0_PAD = """layers { layer { name: "pad1" type: "padding" pad: 3 } bottom: "data" top: "pad1" }"""


def v0_conv(name: str, bottom: str, pad: str = "") -> str:
    return V0_CONV % {"name": name, "bottom": bottom, "pad": pad}


V0_SIMPLE = 'name: "tiny"' + V0_DATA + V0_PAD + v0_conv("conv1", "pad1") + V0_TAIL
V0_SIMPLE_PADDED = 'name: "tiny"' + V0_DATA + v0_conv("conv1", "data", "pad: 3") + V0_TAIL

V1_SIMPLE = """
name: "tiny"
layers { name: "data" type: DATA top: "data" top: "label"
         data_param { source: "/tmp/train_db" batch_size: 64 }
         transform_param { mirror: true crop_size: 31 mean_file: "/tmp/mean.binaryproto" } }
layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
         blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
         convolution_param { num_output: 16 pad: 3 kernel_size: 5 stride: 2
                             weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0.5 } } }
layers { name: "ip" type: INNER_PRODUCT bottom: "conv1" top: "ip"
         blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
         inner_product_param { num_output: 10 weight_filler { type: "gaussian" std: 0.1 }
                               bias_filler { type: "constant" value: 0 } } }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "ip" bottom: "label" }
"""
V2_SIMPLE = """
name: "tiny"
layer { name: "data" type: "Data" top: "data" top: "label"
        data_param { source: "/tmp/train_db" batch_size: 64 }
        transform_param { mirror: true crop_size: 31 mean_file: "/tmp/mean.binaryproto" } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        convolution_param { num_output: 16 pad: 3 kernel_size: 5 stride: 2
                            weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0.5 } } }
layer { name: "ip" type: "InnerProduct" bottom: "conv1" top: "ip"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        inner_product_param { num_output: 10 weight_filler { type: "gaussian" std: 0.1 }
                              bias_filler { type: "constant" value: 0 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" }
"""


# ------------------------------------------------------------------ padding folding
def test_padding_simple() -> None:
    check_padding_upgrade(net(V0_SIMPLE), net(V0_SIMPLE_PADDED))


def test_padding_feeding_two_convs() -> None:
    before = 'name: "tiny"' + V0_DATA + V0_PAD + v0_conv("conv1", "pad1") + v0_conv("conv2", "pad1") + V0_TAIL
    after = ('name: "tiny"' + V0_DATA + v0_conv("conv1", "data", "pad: 3")
             + v0_conv("conv2", "data", "pad: 3") + V0_TAIL)
    check_padding_upgrade(net(before), net(after))


def test_padding_imagenet() -> None:
    check_padding_upgrade(fixture("imagenet_v0.prototxt"), fixture("imagenet_v0_padded.prototxt"))


def test_padding_into_pool_sets_pooling_pad() -> None:
    before = net(V0_DATA + V0_PAD + """
        layers { layer { name: "pool" type: "pool" kernelsize: 2 } bottom: "pad1" top: "pool" }""")
    upgraded = v0_upgraded(before)
    assert upgraded.layers[1].bottom == ["data"]
    assert upgraded.layers[1].pooling_param.pad == 3
    assert upgraded.layers[1].pooling_param.kernel_size == 2


def test_padding_into_net_input_blob() -> None:
    before = net('input: "x"' + V0_PAD.replace('"data"', '"x"') + v0_conv("conv1", "pad1"))
    after = net('input: "x"' + v0_conv("conv1", "x", "pad: 3"))
    check_padding_upgrade(before, after)


@pytest.mark.parametrize(("text", "message"), [
    (V0_DATA + V0_PAD + """layers { layer { name: "r" type: "relu" } bottom: "pad1" top: "r" }""",
     "padding layer 'pad1' feeding layer 'r': padding can only feed a conv or pool layer, not 'relu'"),
    (V0_DATA + V0_PAD
     + """layers { layer { name: "c" type: "conv" } bottom: "pad1" bottom: "label" top: "c" }""",
     "the padded layer must take a single bottom, got 2"),
    (V0_DATA
     + """layers { layer { name: "pad1" type: "padding" } bottom: "data" bottom: "label" top: "pad1" }"""
     + v0_conv("conv1", "pad1"), "the padding layer must have one bottom and one top, got 2 and 1"),
    (v0_conv("conv1", "nowhere"), "unknown bottom blob 'nowhere' of V0 layer 'conv1'"),
])
def test_padding_errors_name_file_and_layer(text: str, message: str) -> None:
    with pytest.raises(legacy.UpgradeError, match="^old.prototxt: .*") as info:
        legacy.upgrade_v0_padding_layers(net(text), "old.prototxt")
    assert message in str(info.value)


# ------------------------------------------------------------------ V0 -> V1
def test_v0_to_v1_simple() -> None:
    assert_same(v0_upgraded(net(V0_SIMPLE)), net(V1_SIMPLE))


def test_v0_to_v1_imagenet() -> None:
    assert_same(v0_upgraded(fixture("imagenet_v0.prototxt")), fixture("imagenet_v1.prototxt"))


V0_ALL_PARAMS = """
name: "every_v0_field"
input: "extra" input_dim: 8 input_dim: 3 input_dim: 16 input_dim: 16
force_backward: true
layers { layer { name: "data" type: "data" source: "/db/train" meanfile: "/db/mean.binaryproto"
                 batchsize: 32 cropsize: 24 mirror: true scale: 0.5 rand_skip: 11 }
         top: "data" top: "label" }
layers { layer { name: "images" type: "images" source: "/lists/train.txt" meanfile: "/db/mean.binaryproto"
                 batchsize: 16 cropsize: 24 mirror: false scale: 0.125 rand_skip: 5 shuffle_images: true
                 new_height: 48 new_width: 40 }
         top: "images_data" top: "images_label" }
layers { layer { name: "windows" type: "window_data" source: "/lists/windows.txt"
                 meanfile: "/db/mean.binaryproto" batchsize: 8 cropsize: 24 mirror: true
                 det_fg_threshold: 0.625 det_bg_threshold: 0.375 det_fg_fraction: 0.375
                 det_context_pad: 4 det_crop_mode: "square" }
         top: "windows_data" top: "windows_label" }
layers { layer { name: "h5" type: "hdf5_data" source: "/lists/h5.txt" batchsize: 4 } top: "h5" }
layers { layer { name: "conv1" type: "conv" num_output: 20 biasterm: false pad: 1 kernelsize: 3
                 group: 2 stride: 2 weight_filler { type: "gaussian" std: 0.02 }
                 bias_filler { type: "constant" value: 0.25 }
                 blobs { num: 1 channels: 1 height: 1 width: 2 data: 1.5 data: -2 }
                 blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 }
         bottom: "data" top: "conv1" }
layers { layer { name: "pool_ave" type: "pool" pool: AVE kernelsize: 2 stride: 2 pad: 1 }
         bottom: "conv1" top: "pool_ave" }
layers { layer { name: "pool_stoch" type: "pool" pool: STOCHASTIC kernelsize: 3 stride: 1 }
         bottom: "conv1" top: "pool_stoch" }
layers { layer { name: "cat" type: "concat" concat_dim: 1 } bottom: "pool_ave" bottom: "pool_stoch"
         top: "cat" }
layers { layer { name: "lrn" type: "lrn" local_size: 3 alpha: 0.5 beta: 0.25 k: 2 } bottom: "cat" top: "lrn" }
layers { layer { name: "fc" type: "innerproduct" num_output: 7 biasterm: false
                 weight_filler { type: "xavier" } bias_filler { type: "constant" value: 2 }
                 blobs_lr: 3 weight_decay: 4 }
         bottom: "lrn" top: "fc" }
layers { layer { name: "drop" type: "dropout" dropout_ratio: 0.25 } bottom: "fc" top: "fc" }
layers { layer { name: "infogain" type: "infogain_loss" source: "/db/H.binaryproto" }
         bottom: "fc" bottom: "label" }
layers { layer { name: "h5out" type: "hdf5_output" hdf5_output_param { file_name: "/tmp/out.h5" } } }
layers { layer { name: "accuracy" type: "accuracy" } }
layers { layer { name: "bnll" type: "bnll" } }
layers { layer { name: "euclidean" type: "euclidean_loss" } }
layers { layer { name: "flatten" type: "flatten" } }
layers { layer { name: "im2col" type: "im2col" } }
layers { layer { name: "mlogistic" type: "multinomial_logistic_loss" } }
layers { layer { name: "relu" type: "relu" } }
layers { layer { name: "sigmoid" type: "sigmoid" } }
layers { layer { name: "softmax" type: "softmax" } }
layers { layer { name: "split" type: "split" } }
layers { layer { name: "tanh" type: "tanh" } }
"""
V1_ALL_PARAMS = """
name: "every_v0_field"
input: "extra" input_dim: 8 input_dim: 3 input_dim: 16 input_dim: 16
force_backward: true
layers { name: "data" type: DATA top: "data" top: "label"
         data_param { source: "/db/train" batch_size: 32 rand_skip: 11 }
         transform_param { scale: 0.5 mirror: true crop_size: 24 mean_file: "/db/mean.binaryproto" } }
layers { name: "images" type: IMAGE_DATA top: "images_data" top: "images_label"
         image_data_param { source: "/lists/train.txt" batch_size: 16 rand_skip: 5 shuffle: true
                            new_height: 48 new_width: 40 }
         transform_param { scale: 0.125 mirror: false crop_size: 24 mean_file: "/db/mean.binaryproto" } }
layers { name: "windows" type: WINDOW_DATA top: "windows_data" top: "windows_label"
         window_data_param { source: "/lists/windows.txt" batch_size: 8 fg_threshold: 0.625
                             bg_threshold: 0.375 fg_fraction: 0.375 context_pad: 4 crop_mode: "square" }
         transform_param { mirror: true crop_size: 24 mean_file: "/db/mean.binaryproto" } }
layers { name: "h5" type: HDF5_DATA top: "h5" hdf5_data_param { source: "/lists/h5.txt" batch_size: 4 } }
layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
         blobs { num: 1 channels: 1 height: 1 width: 2 data: 1.5 data: -2 }
         blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
         convolution_param { num_output: 20 bias_term: false pad: 1 kernel_size: 3 group: 2 stride: 2
                             weight_filler { type: "gaussian" std: 0.02 }
                             bias_filler { type: "constant" value: 0.25 } } }
layers { name: "pool_ave" type: POOLING bottom: "conv1" top: "pool_ave"
         pooling_param { pool: AVE kernel_size: 2 stride: 2 pad: 1 } }
layers { name: "pool_stoch" type: POOLING bottom: "conv1" top: "pool_stoch"
         pooling_param { pool: STOCHASTIC kernel_size: 3 stride: 1 } }
layers { name: "cat" type: CONCAT bottom: "pool_ave" bottom: "pool_stoch" top: "cat"
         concat_param { concat_dim: 1 } }
layers { name: "lrn" type: LRN bottom: "cat" top: "lrn"
         lrn_param { local_size: 3 alpha: 0.5 beta: 0.25 k: 2 } }
layers { name: "fc" type: INNER_PRODUCT bottom: "lrn" top: "fc" blobs_lr: 3 weight_decay: 4
         inner_product_param { num_output: 7 bias_term: false weight_filler { type: "xavier" }
                               bias_filler { type: "constant" value: 2 } } }
layers { name: "drop" type: DROPOUT bottom: "fc" top: "fc" dropout_param { dropout_ratio: 0.25 } }
layers { name: "infogain" type: INFOGAIN_LOSS bottom: "fc" bottom: "label"
         infogain_loss_param { source: "/db/H.binaryproto" } }
layers { name: "h5out" type: HDF5_OUTPUT hdf5_output_param { file_name: "/tmp/out.h5" } }
layers { name: "accuracy" type: ACCURACY }
layers { name: "bnll" type: BNLL }
layers { name: "euclidean" type: EUCLIDEAN_LOSS }
layers { name: "flatten" type: FLATTEN }
layers { name: "im2col" type: IM2COL }
layers { name: "mlogistic" type: MULTINOMIAL_LOGISTIC_LOSS }
layers { name: "relu" type: RELU }
layers { name: "sigmoid" type: SIGMOID }
layers { name: "softmax" type: SOFTMAX }
layers { name: "split" type: SPLIT }
layers { name: "tanh" type: TANH }
"""


def test_v0_to_v1_all_params() -> None:
    assert_same(v0_upgraded(net(V0_ALL_PARAMS)), net(V1_ALL_PARAMS))


def test_v0_upgrade_keeps_only_caffes_net_fields() -> None:
    before = net('name: "n" input_shape { dim: 1 } state { phase: TRAIN } debug_info: true' + V0_DATA)
    upgraded = v0_upgraded(before)
    assert not upgraded.input_shape and not upgraded.HasField("state")
    assert not upgraded.HasField("debug_info")


def test_v0_field_for_the_wrong_type_is_dropped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    param = net("""layers { layer { name: "r" type: "relu" num_output: 3 kernelsize: 2 } }""")
    with caplog.at_level(logging.WARNING, logger="recaffe.io.legacy"):
        assert not legacy.upgrade_v0_net(param, "old.prototxt")
    assert_same(param, net("""layers { name: "r" type: RELU }"""))
    assert ("old.prototxt: V0 layer 'r': parameter num_output does not apply to layer type 'relu'"
            in caplog.text)
    assert "parameter kernelsize does not apply" in caplog.text


def test_v0_unknown_type_raises() -> None:
    with pytest.raises(legacy.UpgradeError, match=r"old.prototxt: V0 layer 'x' has unknown type 'warp'"):
        legacy.upgrade_v0_net(net("""layers { layer { name: "x" type: "warp" } }"""), "old.prototxt")


def test_v0_layer_without_v0_definition_keeps_only_its_blobs_names() -> None:
    param = net("""input: "x" layers { layer { name: "a" type: "relu" } bottom: "x" top: "y" }
                   layers { name: "ignored" bottom: "y" top: "z" }""")
    assert legacy.upgrade_v0_net(param)
    assert_same(param, net("""input: "x" layers { name: "a" type: RELU bottom: "x" top: "y" }
                               layers { bottom: "y" top: "z" }"""))


# ------------------------------------------------------------------ data transformation
@pytest.mark.parametrize(("v1_type", "typed"), [
    ("DATA", "data_param"), ("IMAGE_DATA", "image_data_param"), ("WINDOW_DATA", "window_data_param"),
])
def test_data_transformation_upgrade(v1_type: str, typed: str) -> None:
    param = net(f"""layers {{ name: "d" type: {v1_type}
        {typed} {{ source: "src" scale: 0.5 mean_file: "m.binaryproto" crop_size: 7 mirror: true }} }}""")
    assert legacy.needs_data_upgrade(param)
    legacy.upgrade_data_transformation(param)
    assert_same(param, net(f"""layers {{ name: "d" type: {v1_type} {typed} {{ source: "src" }}
        transform_param {{ scale: 0.5 mirror: true crop_size: 7 mean_file: "m.binaryproto" }} }}"""))
    assert not legacy.needs_data_upgrade(param)


def test_data_transformation_marks_every_data_layers_params_present() -> None:
    param = net("""layers { name: "a" type: IMAGE_DATA image_data_param { mirror: true } }
                   layers { name: "b" type: DATA }
                   layers { name: "c" type: RELU }""")
    legacy.upgrade_data_transformation(param)
    assert_same(param, net("""layers { name: "a" type: IMAGE_DATA image_data_param { }
                                       transform_param { mirror: true } }
                               layers { name: "b" type: DATA data_param { } transform_param { } }
                               layers { name: "c" type: RELU }"""))


def test_data_transformation_leaves_other_layers_alone() -> None:
    param = net("""layers { name: "d" type: DATA data_param { source: "s" } }
                   layers { name: "m" type: MEMORY_DATA memory_data_param { batch_size: 1 } }""")
    assert not legacy.needs_data_upgrade(param)


def test_data_transformation_through_upgrade_net() -> None:
    param = net("""layers { name: "d" type: DATA top: "x"
                            data_param { source: "s" batch_size: 2 crop_size: 3 } }""")
    upgrade.upgrade_net(param)
    assert_same(param, net("""layer { name: "d" type: "Data" top: "x"
        transform_param { crop_size: 3 } data_param { source: "s" batch_size: 2 } }"""))


# ------------------------------------------------------------------ V1 -> current
def test_v1_to_v2_simple() -> None:
    assert_same(v1_upgraded(net(V1_SIMPLE)), net(V2_SIMPLE))


def test_v1_to_v2_imagenet() -> None:
    assert_same(v1_upgraded(fixture("imagenet_v1.prototxt")), fixture("imagenet_v2.prototxt"))


V1_ALL_PARAMS_FOR_V2 = """
name: "v1_everything"
input: "x" input_dim: 2 input_dim: 3 input_dim: 4 input_dim: 5
state { phase: TRAIN level: 2 }
layers { name: "shared_a" type: INNER_PRODUCT bottom: "x" top: "a"
         include { phase: TRAIN stage: "s1" } include { min_level: 1 }
         param: "w" param: "b" param: "unused" blob_share_mode: PERMISSIVE blob_share_mode: STRICT
         blobs_lr: 0.5 blobs_lr: 1.5 weight_decay: 2
         blobs { shape { dim: 2 dim: 3 } data: 1 data: 2 data: 3 data: 4 data: 5 data: 6 }
         blobs { num: 1 channels: 1 height: 1 width: 2 double_data: 0.25 double_data: 0.75 }
         inner_product_param { num_output: 2 axis: 2 } }
layers { name: "loss" type: EUCLIDEAN_LOSS bottom: "a" bottom: "a" top: "l" loss_weight: 2.5
         exclude { phase: TEST not_stage: "s2" max_level: 4 }
         loss_param { ignore_label: 3 normalization: BATCH_SIZE } }
layers { name: "acc" type: ACCURACY accuracy_param { top_k: 5 axis: 2 ignore_label: -1 } }
layers { name: "am" type: ARGMAX argmax_param { out_max_val: true top_k: 2 axis: 1 } }
layers { name: "cat" type: CONCAT concat_param { axis: 2 } }
layers { name: "con" type: CONTRASTIVE_LOSS contrastive_loss_param { margin: 2 legacy_version: true } }
layers { name: "conv" type: CONVOLUTION
         convolution_param { num_output: 4 pad_h: 1 pad_w: 2 kernel_h: 3 kernel_w: 4 stride_h: 2
                             stride_w: 1 engine: CAFFE axis: 1 force_nd_im2col: true dilation: 2 } }
layers { name: "deconv" type: DECONVOLUTION convolution_param { num_output: 3 kernel_size: 2 } }
layers { name: "data" type: DATA transform_param { scale: 0.5 mirror: true }
         data_param { source: "db" backend: LMDB prefetch: 3 } }
layers { name: "drop" type: DROPOUT dropout_param { dropout_ratio: 0.125 } }
layers { name: "dummy" type: DUMMY_DATA
         dummy_data_param { data_filler { type: "constant" value: 1 } shape { dim: 2 } num: 1 } }
layers { name: "elt" type: ELTWISE
         eltwise_param { operation: MAX coeff: 1 coeff: -1 stable_prod_grad: false } }
layers { name: "exp" type: EXP exp_param { base: 2 scale: 0.5 shift: 1 } }
layers { name: "h5" type: HDF5_DATA hdf5_data_param { source: "list.txt" batch_size: 3 shuffle: true } }
layers { name: "h5out" type: HDF5_OUTPUT hdf5_output_param { file_name: "out.h5" } }
layers { name: "hinge" type: HINGE_LOSS hinge_loss_param { norm: L2 } }
layers { name: "img" type: IMAGE_DATA
         image_data_param { source: "list.txt" is_color: false root_folder: "/r/" } }
layers { name: "info" type: INFOGAIN_LOSS infogain_loss_param { source: "H.binaryproto" axis: 2 } }
layers { name: "lrn" type: LRN lrn_param { local_size: 3 norm_region: WITHIN_CHANNEL } }
layers { name: "mem" type: MEMORY_DATA memory_data_param { batch_size: 2 channels: 3 height: 4 width: 5 } }
layers { name: "mvn" type: MVN mvn_param { normalize_variance: false across_channels: true eps: 0.001 } }
layers { name: "pool" type: POOLING pooling_param { pool: AVE global_pooling: true } }
layers { name: "pow" type: POWER power_param { power: 2 scale: 3 shift: 4 } }
layers { name: "relu" type: RELU relu_param { negative_slope: 0.125 } }
layers { name: "sig" type: SIGMOID sigmoid_param { engine: CAFFE } }
layers { name: "soft" type: SOFTMAX softmax_param { axis: 2 } }
layers { name: "slice" type: SLICE slice_param { axis: 1 slice_point: 2 slice_point: 5 } }
layers { name: "tanh" type: TANH tanh_param { engine: CAFFE } }
layers { name: "thr" type: THRESHOLD threshold_param { threshold: 0.5 } }
layers { name: "win" type: WINDOW_DATA
         window_data_param { source: "w.txt" cache_images: true root_folder: "/w/" } }
layers { name: "abs" type: ABSVAL }
layers { name: "sce" type: SIGMOID_CROSS_ENTROPY_LOSS }
layers { name: "silence" type: SILENCE bottom: "l" }
layers { name: "flat" type: FLATTEN }
"""
V2_ALL_PARAMS = """
name: "v1_everything"
input: "x" input_dim: 2 input_dim: 3 input_dim: 4 input_dim: 5
state { phase: TRAIN level: 2 }
layer { name: "shared_a" type: "InnerProduct" bottom: "x" top: "a"
        include { phase: TRAIN stage: "s1" } include { min_level: 1 }
        param { name: "w" share_mode: PERMISSIVE lr_mult: 0.5 decay_mult: 2 }
        param { name: "b" share_mode: STRICT lr_mult: 1.5 }
        param { name: "unused" }
        blobs { shape { dim: 2 dim: 3 } data: 1 data: 2 data: 3 data: 4 data: 5 data: 6 }
        blobs { num: 1 channels: 1 height: 1 width: 2 double_data: 0.25 double_data: 0.75 }
        inner_product_param { num_output: 2 axis: 2 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "a" bottom: "a" top: "l" loss_weight: 2.5
        exclude { phase: TEST not_stage: "s2" max_level: 4 }
        loss_param { ignore_label: 3 normalization: BATCH_SIZE } }
layer { name: "acc" type: "Accuracy" accuracy_param { top_k: 5 axis: 2 ignore_label: -1 } }
layer { name: "am" type: "ArgMax" argmax_param { out_max_val: true top_k: 2 axis: 1 } }
layer { name: "cat" type: "Concat" concat_param { axis: 2 } }
layer { name: "con" type: "ContrastiveLoss" contrastive_loss_param { margin: 2 legacy_version: true } }
layer { name: "conv" type: "Convolution"
        convolution_param { num_output: 4 pad_h: 1 pad_w: 2 kernel_h: 3 kernel_w: 4 stride_h: 2
                            stride_w: 1 engine: CAFFE axis: 1 force_nd_im2col: true dilation: 2 } }
layer { name: "deconv" type: "Deconvolution" convolution_param { num_output: 3 kernel_size: 2 } }
layer { name: "data" type: "Data" transform_param { scale: 0.5 mirror: true }
        data_param { source: "db" backend: LMDB prefetch: 3 } }
layer { name: "drop" type: "Dropout" dropout_param { dropout_ratio: 0.125 } }
layer { name: "dummy" type: "DummyData"
        dummy_data_param { data_filler { type: "constant" value: 1 } shape { dim: 2 } num: 1 } }
layer { name: "elt" type: "Eltwise"
        eltwise_param { operation: MAX coeff: 1 coeff: -1 stable_prod_grad: false } }
layer { name: "exp" type: "Exp" exp_param { base: 2 scale: 0.5 shift: 1 } }
layer { name: "h5" type: "HDF5Data" hdf5_data_param { source: "list.txt" batch_size: 3 shuffle: true } }
layer { name: "h5out" type: "HDF5Output" hdf5_output_param { file_name: "out.h5" } }
layer { name: "hinge" type: "HingeLoss" hinge_loss_param { norm: L2 } }
layer { name: "img" type: "ImageData"
        image_data_param { source: "list.txt" is_color: false root_folder: "/r/" } }
layer { name: "info" type: "InfogainLoss" infogain_loss_param { source: "H.binaryproto" axis: 2 } }
layer { name: "lrn" type: "LRN" lrn_param { local_size: 3 norm_region: WITHIN_CHANNEL } }
layer { name: "mem" type: "MemoryData" memory_data_param { batch_size: 2 channels: 3 height: 4 width: 5 } }
layer { name: "mvn" type: "MVN" mvn_param { normalize_variance: false across_channels: true eps: 0.001 } }
layer { name: "pool" type: "Pooling" pooling_param { pool: AVE global_pooling: true } }
layer { name: "pow" type: "Power" power_param { power: 2 scale: 3 shift: 4 } }
layer { name: "relu" type: "ReLU" relu_param { negative_slope: 0.125 } }
layer { name: "sig" type: "Sigmoid" sigmoid_param { engine: CAFFE } }
layer { name: "soft" type: "Softmax" softmax_param { axis: 2 } }
layer { name: "slice" type: "Slice" slice_param { axis: 1 slice_point: 2 slice_point: 5 } }
layer { name: "tanh" type: "TanH" tanh_param { engine: CAFFE } }
layer { name: "thr" type: "Threshold" threshold_param { threshold: 0.5 } }
layer { name: "win" type: "WindowData"
        window_data_param { source: "w.txt" cache_images: true root_folder: "/w/" } }
layer { name: "abs" type: "AbsVal" }
layer { name: "sce" type: "SigmoidCrossEntropyLoss" }
layer { name: "silence" type: "Silence" bottom: "l" }
layer { name: "flat" type: "Flatten" }
"""


def test_v1_to_v2_all_params() -> None:
    assert_same(v1_upgraded(net(V1_ALL_PARAMS_FOR_V2)), net(V2_ALL_PARAMS))


# Caffe's UpgradeV1LayerParameter copies exactly these typed params (transform and loss included).
CAFFE_V1_TYPED_PARAMS = {
    "accuracy_param", "argmax_param", "concat_param", "contrastive_loss_param", "convolution_param",
    "data_param", "dropout_param", "dummy_data_param", "eltwise_param", "exp_param", "hdf5_data_param",
    "hdf5_output_param", "hinge_loss_param", "image_data_param", "infogain_loss_param",
    "inner_product_param", "lrn_param", "memory_data_param", "mvn_param", "pooling_param",
    "power_param", "relu_param", "sigmoid_param", "softmax_param", "slice_param", "tanh_param",
    "threshold_param", "window_data_param", "transform_param", "loss_param",
}


def test_every_v1_typed_param_is_copied_and_exists_in_layer_parameter() -> None:
    assert set(legacy._V1_TYPED_PARAMS) == CAFFE_V1_TYPED_PARAMS
    for name in CAFFE_V1_TYPED_PARAMS:
        v1_field = caffe_pb2.V1LayerParameter.DESCRIPTOR.fields_by_name[name]
        field = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name[name]
        assert field.message_type.full_name == v1_field.message_type.full_name
    assert {
        name for name in V1_ALL_PARAMS_FOR_V2.split() if name.endswith("_param")
    } == CAFFE_V1_TYPED_PARAMS  # the fixture above sets every one of them


def test_v1_net_with_layer_and_layers_is_refused() -> None:
    param = net("""layer { name: "new" type: "ReLU" } layers { name: "old" type: RELU }""")
    with pytest.raises(legacy.UpgradeError, match="old.prototxt: the net has both 'layer' and 'layers'"):
        legacy.upgrade_v1_net(param, "old.prototxt")


def test_v1_layer_holding_a_v0_layer_warns(caplog: pytest.LogCaptureFixture) -> None:
    v1 = net("""layers { name: "r" type: RELU layer { name: "r0" } }""").layers[0]
    out = caffe_pb2.LayerParameter()
    with caplog.at_level(logging.WARNING, logger="recaffe.io.legacy"):
        assert not legacy.upgrade_v1_layer(v1, out, "old.prototxt")
    assert "old.prototxt: V1 layer 'r' also holds a V0 layer definition" in caplog.text
    assert_same(caffe_pb2.NetParameter(layer=[out]), net("""layer { name: "r" type: "ReLU" }"""))


def test_v0_net_all_the_way_to_current_format(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "old.prototxt"
    path.write_text((FIXTURES / "imagenet_v0.prototxt").read_text())
    assert_same(prototxt.read_net_param(path), fixture("imagenet_v2.prototxt"))


# ------------------------------------------------------------------ V1 type table
# Every V1LayerParameter.LayerType enum name and the type Caffe's UpgradeV1LayerType gives it.
V1_ENUM_TO_TYPE = {
    "NONE": "", "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DATA": "Data", "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout", "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise", "EXP": "Exp", "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output", "HINGE_LOSS": "HingeLoss",
    "IM2COL": "Im2col", "IMAGE_DATA": "ImageData", "INFOGAIN_LOSS": "InfogainLoss",
    "INNER_PRODUCT": "InnerProduct", "LRN": "LRN", "MEMORY_DATA": "MemoryData",
    "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss", "MVN": "MVN", "POOLING": "Pooling",
    "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice",
    "TANH": "TanH", "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}


def test_v1_type_table_is_total_and_matches_caffe() -> None:
    enum = caffe_pb2.V1LayerParameter.LayerType
    assert set(enum.keys()) == set(V1_ENUM_TO_TYPE)
    assert set(legacy.V1_TYPE_NAMES) == set(enum.values())
    for name, type_name in V1_ENUM_TO_TYPE.items():
        assert legacy.V1_TYPE_NAMES[enum.Value(name)] == type_name


def test_v1_type_names_create_the_registered_layers() -> None:
    registered = [t for t in V1_ENUM_TO_TYPE.values() if t in recaffe.LAYERS]
    assert {"InnerProduct", "ReLU", "Split"} <= set(registered)  # the rest arrive with their layers
    for type_name in registered:
        layer = recaffe.LAYERS.get(type_name)(caffe_pb2.LayerParameter(name="x", type=type_name))
        assert layer.type == type_name


def test_v0_type_table_targets_v1_enum_values() -> None:
    assert len(legacy.V0_TYPES) == 24
    enum = caffe_pb2.V1LayerParameter.LayerType
    assert legacy.V0_TYPES["conv"] == enum.Value("CONVOLUTION")
    assert legacy.V0_TYPES["images"] == enum.Value("IMAGE_DATA")
    assert legacy.V0_TYPES["innerproduct"] == enum.Value("INNER_PRODUCT")
    assert legacy.V0_TYPES["softmax_loss"] == enum.Value("SOFTMAX_LOSS")
    assert legacy.V0_TYPES["pool"] == enum.Value("POOLING")


# ------------------------------------------------------------------ solver
SOLVER = """net: "examples/lenet.prototxt" weights: "a.caffemodel" weights: "b.caffemodel"
test_iter: 50 test_interval: 250 base_lr: 0.02 momentum: 0.5 weight_decay: 0.001 lr_policy: "step"
gamma: 0.5 stepsize: 100 display: 25 max_iter: 1000 snapshot: 500 snapshot_prefix: "snaps/lenet"
solver_mode: CPU """


@pytest.mark.parametrize(("old", "new"), [
    ("SGD", "SGD"), ("NESTEROV", "Nesterov"), ("ADAGRAD", "AdaGrad"),
    ("RMSPROP", "RMSProp"), ("ADADELTA", "AdaDelta"), ("ADAM", "Adam"),
])
def test_solver_type_upgrade(old: str, new: str) -> None:
    param = text_format.Parse(SOLVER + f"solver_type: {old}", caffe_pb2.SolverParameter())
    upgrade.upgrade_solver(param)
    expected = text_format.Parse(SOLVER + f'type: "{new}"', caffe_pb2.SolverParameter())
    assert text_format.MessageToString(param) == text_format.MessageToString(expected)


def test_solver_type_and_solver_type_together_is_an_error() -> None:
    param = text_format.Parse('solver_type: ADAM type: "Adam"', caffe_pb2.SolverParameter())
    with pytest.raises(ValueError, match="s.prototxt: solver_type .* and type .* cannot both be given"):
        upgrade.upgrade_solver(param, "s.prototxt")


def test_solver_snapshot_prefix_defaults(tmp_path: pathlib.Path) -> None:
    unset = upgrade.upgrade_solver(caffe_pb2.SolverParameter(), str(tmp_path / "lenet_solver.prototxt"))
    assert unset.snapshot_prefix == str(tmp_path / "lenet_solver")
    folder = upgrade.upgrade_solver(caffe_pb2.SolverParameter(snapshot_prefix=str(tmp_path)),
                                    "cfg/lenet_solver.prototxt")
    assert folder.snapshot_prefix == str(tmp_path / "lenet_solver")


# ------------------------------------------------------------------ input fields
def test_input_dim_becomes_an_input_layer_in_front() -> None:
    param = net("""input: "a" input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 4
                   input: "b" input_dim: 5 input_dim: 6 input_dim: 7 input_dim: 8
                   layer { name: "r" type: "ReLU" bottom: "a" top: "a" }""")
    upgrade.upgrade_net(param)
    assert_same(param, net("""
        layer { name: "input" type: "Input" top: "a" top: "b"
                input_param { shape { dim: 1 dim: 2 dim: 3 dim: 4 } shape { dim: 5 dim: 6 dim: 7 dim: 8 } } }
        layer { name: "r" type: "ReLU" bottom: "a" top: "a" }"""))


def test_input_shape_becomes_an_input_layer() -> None:
    param = net("""input: "a" input_shape { dim: 2 dim: 9 }
                   layer { name: "r" type: "ReLU" bottom: "a" top: "r" }
                   layer { name: "s" type: "ReLU" bottom: "r" top: "s" }""")
    upgrade.upgrade_net(param)
    assert_same(param, net("""layer { name: "input" type: "Input" top: "a"
                                      input_param { shape { dim: 2 dim: 9 } } }
                               layer { name: "r" type: "ReLU" bottom: "a" top: "r" }
                               layer { name: "s" type: "ReLU" bottom: "r" top: "s" }"""))


def test_bare_legacy_input_is_dropped() -> None:
    param = net("""name: "weights" input: "data" layer { name: "ip" type: "InnerProduct" }""")
    assert upgrade.net_needs_upgrade(param)
    upgrade.upgrade_net(param)
    assert_same(param, net("""name: "weights" layer { name: "ip" type: "InnerProduct" }"""))
    assert not upgrade.net_needs_upgrade(param)


@pytest.mark.parametrize(("text", "message"), [
    ('input: "a" input: "b" input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 4',
     "net.prototxt: 2 input.s. need 8 input_dim values, got 4"),
    ('input: "a" input: "b" input_shape { dim: 1 }', "net.prototxt: 2 input.s. need as many input_shape"),
])
def test_input_count_mismatch_is_an_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        upgrade.upgrade_net(net(text), "net.prototxt")


def test_v1_net_with_input_dims_upgrades_through_both_steps() -> None:
    param = net("""input: "x" input_dim: 1 input_dim: 1 input_dim: 2 input_dim: 2
                   layers { name: "r" type: RELU bottom: "x" top: "x" }""")
    upgrade.upgrade_net(param)
    assert_same(param, net("""layer { name: "input" type: "Input" top: "x"
                                      input_param { shape { dim: 1 dim: 1 dim: 2 dim: 2 } } }
                               layer { name: "r" type: "ReLU" bottom: "x" top: "x" }"""))


# ------------------------------------------------------------------ BatchNorm
def test_batch_norm_with_three_params_gets_zero_multipliers() -> None:
    param = net("""layer { name: "bn" type: "BatchNorm" param { lr_mult: 1 name: "m" } param { lr_mult: 1 }
                           param { decay_mult: 5 } }
                   layer { name: "bn2" type: "BatchNorm" param { lr_mult: 1 } param { lr_mult: 1 } }""")
    assert upgrade.needs_batch_norm_upgrade(param)
    upgrade.upgrade_net(param)
    assert_same(param, net("""
        layer { name: "bn" type: "BatchNorm" param { name: "m" lr_mult: 0 decay_mult: 0 }
                param { lr_mult: 0 decay_mult: 0 } param { lr_mult: 0 decay_mult: 0 } }
        layer { name: "bn2" type: "BatchNorm" param { lr_mult: 1 } param { lr_mult: 1 } }"""))
    again = caffe_pb2.NetParameter()
    again.CopyFrom(param)
    assert_same(upgrade.upgrade_net(again), param)  # still "needs" it, as in Caffe, but idempotent


# ------------------------------------------------------------------ a working net
V1_RUNNABLE = """
name: "v1_mlp"
input: "x" input_dim: 4 input_dim: 3 input_dim: 1 input_dim: 1
layers { name: "ip1" type: INNER_PRODUCT bottom: "x" top: "h" blobs_lr: 1 blobs_lr: 2 weight_decay:
         1 weight_decay: 0
         inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 }
                               bias_filler { type: "constant" value: 0.25 } } }
layers { name: "relu" type: RELU bottom: "h" top: "h" relu_param { negative_slope: 0.1 } }
layers { name: "ip2" type: INNER_PRODUCT bottom: "h" top: "y" param: "w2" blobs_lr: 0
         inner_product_param { num_output: 2 bias_term: false weight_filler { type: "gaussian" std: 0.5 } } }
"""


def test_net_builds_and_runs_from_an_upgraded_v1_prototxt(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "v1.prototxt"
    path.write_text(V1_RUNNABLE)
    recaffe.set_random_seed(3)
    model = recaffe.Net(str(path), recaffe.TEST)
    assert [layer.type for layer in model.layers] == ["Input", "InnerProduct", "ReLU", "InnerProduct"]
    assert model.inputs == ["x"] and model.outputs == ["y"]
    assert [(p.lr_mult, p.decay_mult) for p in model.learnable_params] == [(1, 1), (2, 0), (0, 1)]
    assert model.layer_by_name("ip2").param.param[0].name == "w2"
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    model.blobs["x"].data.copy_(recaffe.Blob((4, 3)).data.new_tensor(x).reshape(4, 3, 1, 1))
    model.forward()
    w1, b1 = (b.data.numpy() for b in model.layer_params["ip1"])
    w2 = model.layer_params["ip2"][0].data.numpy()
    h = x @ w1.T + b1
    expected = np.where(h > 0, h, 0.1 * h) @ w2.T
    np.testing.assert_allclose(model.blobs["y"].data.numpy(), expected, rtol=1e-5, atol=1e-6)
