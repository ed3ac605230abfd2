"""Caffe's file formats: prototxt round trips, caffemodels, BlobProto shapes, mean files, HDF5."""

from __future__ import annotations

import logging
import pathlib

import h5py
import lmdb
import numpy as np
import pytest
import torch
from google.protobuf import text_format

import recaffe
from recaffe.io import binaryproto, blobproto, prototxt
from recaffe.proto import caffe_pb2
from tests.conftest import GOLDEN, SHARED

MODELS = SHARED / "caffe-models"
MODEL_FILES = sorted(MODELS.rglob("*.prototxt")) if MODELS.is_dir() else []


# ================================================================ prototxt
def message_for(path: pathlib.Path) -> caffe_pb2.NetParameter | caffe_pb2.SolverParameter:
    return caffe_pb2.SolverParameter() if "solver" in path.name else caffe_pb2.NetParameter()


def test_the_shared_models_are_found(caffe_models: pathlib.Path) -> None:
    assert len(MODEL_FILES) > 40
    assert any(p.name == "lenet_solver.prototxt" for p in MODEL_FILES)


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: str(p.relative_to(MODELS)))
def test_prototxt_text_round_trip_is_exact(path: pathlib.Path) -> None:
    parsed = prototxt.read_text(path, message_for(path))
    assert parsed.ListFields(), f"{path} parsed to an empty message"
    text = prototxt.to_text(parsed)
    again = prototxt.parse_text(text, message_for(path))
    assert again == parsed
    assert prototxt.to_text(again) == text
    binary = type(parsed).FromString(parsed.SerializeToString())
    assert binary == parsed


@pytest.mark.parametrize("path", [p for p in MODEL_FILES if "solver" not in p.name],
                         ids=lambda p: str(p.relative_to(MODELS)))
def test_reading_current_nets_changes_only_old_batch_norm_params(path: pathlib.Path) -> None:
    raw = prototxt.read_text(path, caffe_pb2.NetParameter())
    upgraded = prototxt.read_net_param(path)
    for layer in raw.layer:
        if layer.type == "BatchNorm" and len(layer.param) == 3:  # Caffe zeroes these multipliers
            for spec in layer.param:
                spec.lr_mult = spec.decay_mult = 0
    assert upgraded == raw


def test_write_text_then_read_back(tmp_path: pathlib.Path) -> None:
    param = text_format.Parse('name: "n" layer { name: "a" type: "ReLU" bottom: "x" top: "x" }',
                              caffe_pb2.NetParameter())
    prototxt.write_text(tmp_path / "n.prototxt", param)
    assert prototxt.read_text(tmp_path / "n.prototxt", caffe_pb2.NetParameter()) == param


BROKEN = 'name: "net"\nlayer {\n  name: "ip"\n  tyep: "InnerProduct"\n}\n'


def test_parse_error_names_file_line_and_column(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "broken.prototxt"
    path.write_text(BROKEN)
    with pytest.raises(prototxt.ProtoFileError) as info:
        recaffe.Net(str(path), recaffe.TEST)
    assert str(info.value).startswith(f"{path}:4:3: cannot parse as NetParameter: ")
    assert '"tyep"' in str(info.value)


def test_parse_error_for_a_bad_value(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "bad.prototxt"
    path.write_text('name: "net"\nlayer { name: "ip" type: "InnerProduct"\n'
                    '  inner_product_param { num_output: -x } }\n')
    with pytest.raises(prototxt.ProtoFileError, match=rf"^{path}:3:\d+: cannot parse as NetParameter"):
        prototxt.read_net_param(path)


def test_binary_file_read_as_text_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "w.caffemodel"
    small_net(seed=1).save(path)
    with pytest.raises(prototxt.ProtoFileError, match="is not a text NetParameter: it holds binary data"):
        recaffe.Net(str(path), recaffe.TEST)
    with pytest.raises(prototxt.ProtoFileError, match="is not a text SolverParameter: it holds binary"):
        prototxt.read_solver_param(GOLDEN / "data" / "mean.binaryproto")


def test_text_file_read_as_binary_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "net.prototxt"
    path.write_text(prototxt.to_text(small_net_param()))
    with pytest.raises(prototxt.ProtoFileError,
                       match=r"not a binary NetParameter .* This is a text prototxt, not a caffemodel"):
        small_net(seed=1).copy_trained_layers_from(path)
    with pytest.raises(prototxt.ProtoFileError, match="This is a text prototxt, not a binaryproto"):
        binaryproto.read_mean(path)


def test_missing_file_is_named(tmp_path: pathlib.Path) -> None:
    with pytest.raises(prototxt.ProtoFileError, match=r"cannot open '.*nope.prototxt': No such file"):
        prototxt.read_net_param(tmp_path / "nope.prototxt")


def test_non_utf8_text_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "latin1.prototxt"
    path.write_bytes('name: "caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(prototxt.ProtoFileError, match="not UTF-8 text"):
        prototxt.read_net_param(path)


def test_looks_binary() -> None:
    assert prototxt.looks_binary(b"\x0a\x03net\xa2\x06\x00")
    assert not prototxt.looks_binary('name: "n\u00e9t"\n\tlayer {}\r\n'.encode())
    assert not prototxt.looks_binary(("x" * 10 + "\u00e9").encode(), head=11)  # cut mid-character


# ================================================================ caffemodel
def small_net_param() -> caffe_pb2.NetParameter:
    return text_format.Parse("""
        name: "small"
        layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 5 } } }
        layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "h"
                inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.7 }
                                      bias_filler { type: "gaussian" std: 0.3 } } }
        layer { name: "relu" type: "ReLU" bottom: "h" top: "h" }
        layer { name: "ip2" type: "InnerProduct" bottom: "h" top: "y"
                inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 }
                                      bias_filler { type: "gaussian" std: 0.1 } } }""",
        caffe_pb2.NetParameter())


def small_net(seed: int, param: caffe_pb2.NetParameter | None = None) -> recaffe.Net:
    recaffe.set_random_seed(seed)
    return recaffe.Net(param or small_net_param(), recaffe.TEST)


def params_of(net: recaffe.Net) -> dict[str, list[torch.Tensor]]:
    return {name: [b.data.clone() for b in blobs] for name, blobs in net.layer_params.items()}


def assert_params_equal(a: recaffe.Net, b: recaffe.Net) -> None:
    pa, pb = params_of(a), params_of(b)
    assert pa.keys() == pb.keys()
    for name in pa:
        assert all(torch.equal(x, y) for x, y in zip(pa[name], pb[name], strict=True)), name


def test_caffemodel_save_then_load_is_exact(tmp_path: pathlib.Path) -> None:
    source, target = small_net(seed=1), small_net(seed=2)
    assert not torch.equal(source.layer_params["ip1"][0].data, target.layer_params["ip1"][0].data)
    path = tmp_path / "small.caffemodel"
    source.save(path)
    target.copy_trained_layers_from(path)
    assert_params_equal(source, target)
    fresh = recaffe.Net(small_net_param(), recaffe.TEST, weights_file=path)
    assert_params_equal(source, fresh)


def test_save_writes_exactly_the_bytes_of_to_proto(tmp_path: pathlib.Path) -> None:
    net = small_net(seed=4)
    for layer in net.layers:
        for blob in layer.blobs:
            blob.diff.copy_(torch.randn(blob.shape))
    for write_diff in (False, True):
        path = tmp_path / f"diff{write_diff}.caffemodel"
        net.save(path, write_diff=write_diff)
        assert path.read_bytes() == net.to_proto(write_diff).SerializeToString()


def test_saved_caffemodel_holds_every_layer_with_shapes(tmp_path: pathlib.Path) -> None:
    net = small_net(seed=4)
    net.save(tmp_path / "m.caffemodel")
    saved = prototxt.read_net_weights(tmp_path / "m.caffemodel")
    assert saved.name == "small"
    assert [layer.name for layer in saved.layer] == ["in", "ip1", "relu", "ip2"]
    assert all(layer.phase == caffe_pb2.TEST for layer in saved.layer)
    ip1 = saved.layer[1]
    assert [list(b.shape.dim) for b in ip1.blobs] == [[4, 5], [4]]
    assert not any(b.HasField("num") for b in ip1.blobs) and not ip1.blobs[0].diff
    np.testing.assert_array_equal(np.array(ip1.blobs[0].data).reshape(4, 5),
                                  net.layer_params["ip1"][0].data.numpy())


def test_diffs_round_trip_when_written(tmp_path: pathlib.Path) -> None:
    source, target = small_net(seed=1), small_net(seed=2)
    for blob in source.layer_params["ip2"]:
        blob.diff.copy_(torch.randn(blob.shape))
    source.save(tmp_path / "d.caffemodel", write_diff=True)
    target.copy_trained_layers_from(tmp_path / "d.caffemodel")
    for mine, theirs in zip(target.layer_params["ip2"], source.layer_params["ip2"]):
        assert torch.equal(mine.diff, theirs.diff)


def test_copy_ignores_unknown_layers_and_keeps_missing_ones(caplog: pytest.LogCaptureFixture) -> None:
    source, target = small_net(seed=1), small_net(seed=2)
    weights = source.to_proto()
    weights.layer[3].name = "renamed"
    before = target.layer_params["ip2"][0].data.clone()
    with caplog.at_level(logging.INFO, logger="recaffe.net"):
        target.copy_trained_layers_from(weights)
    assert "Ignoring source layer renamed" in caplog.text
    assert torch.equal(target.layer_params["ip1"][0].data, source.layer_params["ip1"][0].data)
    assert torch.equal(target.layer_params["ip2"][0].data, before)


def test_copy_shape_mismatch_names_layer_and_shapes(tmp_path: pathlib.Path) -> None:
    other = small_net_param()
    other.layer[1].inner_product_param.num_output = 6
    other.layer[3].inner_product_param.num_output = 3
    small_net(seed=1, param=other).save(tmp_path / "w.caffemodel")
    with pytest.raises(recaffe.LayerError, match=r"w.caffemodel: cannot copy param 0 weights from layer "
                       r"'ip1'; shape mismatch. Source param shape is \(6, 5\); target param shape is "
                       r"\(4, 5\). To learn this layer's parameters from scratch"):
        small_net(seed=2).copy_trained_layers_from(tmp_path / "w.caffemodel")


def test_copy_goes_to_the_first_layer_of_a_repeated_name() -> None:
    twice = small_net_param()
    twice.layer[3].name = "ip1"  # two layers named ip1, with different weight shapes
    twice.layer[3].inner_product_param.num_output = 4
    twice.layer[3].inner_product_param.weight_filler.std = 0.5
    target = small_net(seed=2, param=twice)
    second = [b.data.clone() for b in target.layers[3].blobs]
    weights = small_net(seed=1).to_proto()
    target.copy_trained_layers_from(weights)
    assert torch.equal(target.layers[1].blobs[0].data, small_net(seed=1).layer_params["ip1"][0].data)
    assert all(torch.equal(b.data, s) for b, s in zip(target.layers[3].blobs, second))


def test_copy_blob_count_mismatch() -> None:
    weights = small_net(seed=1).to_proto()
    del weights.layer[1].blobs[1]
    with pytest.raises(recaffe.LayerError, match="incompatible number of blobs for layer 'ip1': 1 in the "
                       "weights, 2 in the net"):
        small_net(seed=2).copy_trained_layers_from(weights)


def legacy_blob(array: np.ndarray) -> caffe_pb2.BlobProto:
    """A BlobProto with the legacy 4-D fields, the trailing axes holding ``array``'s shape."""
    dims = (1,) * (4 - array.ndim) + array.shape
    proto = caffe_pb2.BlobProto(num=dims[0], channels=dims[1], height=dims[2], width=dims[3])
    proto.data.extend(array.reshape(-1).tolist())
    return proto


def test_v1_caffemodel_with_legacy_blob_shapes_loads(tmp_path: pathlib.Path) -> None:
    source = small_net(seed=1)
    v1 = caffe_pb2.NetParameter(name="small")
    for name, blobs in source.layer_params.items():
        layer = v1.layers.add(name=name, type=caffe_pb2.V1LayerParameter.INNER_PRODUCT, blobs_lr=[1, 2])
        layer.blobs.extend(legacy_blob(b.data.numpy()) for b in blobs)
    assert list(v1.layers[0].blobs[0].shape.dim) == [] and v1.layers[0].blobs[0].num == 1
    (tmp_path / "v1.caffemodel").write_bytes(v1.SerializeToString())
    target = small_net(seed=2)
    target.copy_trained_layers_from(tmp_path / "v1.caffemodel")
    assert_params_equal(source, target)
    upgraded = prototxt.read_net_weights(tmp_path / "v1.caffemodel")  # the full upgrade agrees
    assert [layer.name for layer in upgraded.layer] == ["ip1", "ip2"]
    assert upgraded.layer[0].blobs[0] == v1.layers[0].blobs[0]


def test_v0_caffemodel_loads_through_its_v0_layers(tmp_path: pathlib.Path) -> None:
    source = small_net(seed=1)
    v0 = caffe_pb2.NetParameter(name="small")
    v0.layers.add(layer=caffe_pb2.V0LayerParameter(name="pad", type="padding", pad=1))
    for name, blobs in source.layer_params.items():
        layer = v0.layers.add(layer=caffe_pb2.V0LayerParameter(name=name, type="innerproduct"))
        layer.layer.blobs.extend(legacy_blob(b.data.numpy()) for b in blobs)
    (tmp_path / "v0.caffemodel").write_bytes(v0.SerializeToString())
    target = small_net(seed=2)
    target.copy_trained_layers_from(tmp_path / "v0.caffemodel")
    assert_params_equal(source, target)


def test_caffemodel_with_both_layer_kinds_is_refused(tmp_path: pathlib.Path) -> None:
    mixed = small_net(seed=1).to_proto()
    mixed.layers.add(name="old", type=caffe_pb2.V1LayerParameter.RELU)
    (tmp_path / "mixed.caffemodel").write_bytes(mixed.SerializeToString())
    with pytest.raises(ValueError, match="mixed.caffemodel: the net has both 'layer' and 'layers'"):
        small_net(seed=2).copy_trained_layers_from(tmp_path / "mixed.caffemodel")


# ================================================================ BlobProto shapes
@pytest.mark.parametrize(("blob_shape", "legacy", "equal"), [
    ((6, 5), (1, 1, 6, 5), True),          # old InnerProduct weight
    ((6,), (1, 1, 1, 6), True),            # old bias
    ((2, 3, 4, 5), (2, 3, 4, 5), True),
    ((6, 5), (6, 5, 1, 1), False),         # legacy dims index from the end
    ((1, 6, 5), (1, 1, 6, 5), True),
    ((2, 1, 1, 1, 3), (1, 1, 1, 3), False),  # a blob of more than 4 axes never matches legacy dims
    ((), (1, 1, 1, 1), True),
])
def test_shape_equals_with_legacy_dims(
    blob_shape: tuple[int, ...], legacy: tuple[int, ...], equal: bool
) -> None:
    proto = caffe_pb2.BlobProto(num=legacy[0], channels=legacy[1], height=legacy[2], width=legacy[3])
    assert blobproto.shape_equals(blob_shape, proto) is equal


def test_shape_equals_with_shape_field_is_exact() -> None:
    proto = caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=[6, 5]))
    assert blobproto.shape_equals((6, 5), proto)
    assert not blobproto.shape_equals((1, 1, 6, 5), proto)
    assert not blobproto.shape_equals((30,), proto)


def test_any_legacy_field_makes_the_shape_4d() -> None:
    proto = caffe_pb2.BlobProto(channels=3, shape=caffe_pb2.BlobShape(dim=[3]))
    assert blobproto.proto_shape(proto) == (0, 3, 0, 0)


def test_old_inner_product_weight_loads_into_a_2d_blob() -> None:
    weight = np.arange(30, dtype=np.float32).reshape(6, 5) / 7
    blob = recaffe.Blob((6, 5))
    blobproto.load_into_blob(blob, legacy_blob(weight))
    np.testing.assert_array_equal(blob.data.numpy(), weight)
    assert blobproto.blob_from_proto(legacy_blob(weight)).shape == (1, 1, 6, 5)  # reshape: 4-D


def test_load_checks_shape_and_count() -> None:
    with pytest.raises(ValueError, match=r"shape mismatch: blob \(5, 6\) vs BlobProto \(1, 1, 6, 5\)"):
        blobproto.load_into_blob(recaffe.Blob((5, 6)), legacy_blob(np.zeros((6, 5), np.float32)))
    short = caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=[2, 2]), data=[1, 2, 3])
    with pytest.raises(ValueError, match=r"shape \(2, 2\) holds 3 data values, expected 4"):
        blobproto.load_into_blob(recaffe.Blob((2, 2)), short)


def test_double_data_takes_precedence_and_converts() -> None:
    proto = caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=[2]), data=[9, 9],
                                double_data=[0.1, 1 / 3], double_diff=[2.0, 4.0])
    blob = recaffe.Blob((2,))
    blobproto.load_into_blob(blob, proto)
    assert blob.data.tolist() == [np.float32(0.1), np.float32(1 / 3)]
    assert blob.diff.tolist() == [2.0, 4.0]
    assert blobproto.array_from_proto(proto).dtype == np.float64


def test_array_to_proto_float_and_double() -> None:
    values = np.linspace(-1, 1, 12).reshape(3, 4)
    single = blobproto.array_to_proto(values.astype(np.float32))
    assert list(single.shape.dim) == [3, 4] and len(single.data) == 12 and not single.double_data
    double = blobproto.array_to_proto(values, diff=values * 2)
    assert not double.data and list(double.double_data) == values.reshape(-1).tolist()
    assert list(double.double_diff) == (values * 2).reshape(-1).tolist()
    brain = blobproto.array_to_proto(torch.tensor([1.5, -2.25], dtype=torch.bfloat16))
    assert list(brain.data) == [1.5, -2.25]


def test_value_fields_are_packed_floats_and_doubles() -> None:
    # append_values relies on it: a packed float/double field is a bytes field on the wire
    fields = caffe_pb2.BlobProto.DESCRIPTOR.fields_by_name
    for name, kind in (("data", "TYPE_FLOAT"), ("diff", "TYPE_FLOAT"),
                       ("double_data", "TYPE_DOUBLE"), ("double_diff", "TYPE_DOUBLE")):
        assert fields[name].GetOptions().packed and fields[name].is_repeated
        assert fields[name].type == getattr(fields[name], kind)


SPECIAL = [0.0, -0.0, 1.0, -2.5, np.inf, -np.inf, 1e-45, 3.4028235e38, 1e-310, np.pi]


@pytest.mark.parametrize("field", ["data", "diff", "double_data", "double_diff"])
def test_append_values_is_byte_identical_to_protobufs_own_path(field: str) -> None:
    dtype = np.float64 if field.startswith("double") else np.float32
    noise = np.random.default_rng(1).standard_normal(1000)
    values = np.concatenate([np.array(SPECIAL, dtype), noise.astype(dtype)])
    reference = caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=[1]))
    getattr(reference, field).extend(values.tolist())
    getattr(reference, field).extend(values[:3].tolist())
    fast = caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=[1]))
    blobproto.append_values(fast, field, values)
    blobproto.append_values(fast, field, values[:3])  # appends
    assert fast.SerializeToString() == reference.SerializeToString()
    nan = caffe_pb2.BlobProto()
    blobproto.append_values(nan, field, np.array([np.nan], dtype))
    assert np.isnan(getattr(nan, field)[0])


def test_append_values_takes_any_layout_and_dtype() -> None:
    values = np.arange(12, dtype=np.float32).reshape(3, 4) / 3
    fortran, big_endian = values.T.copy().T, values.astype(">f4")
    for variant in (fortran, big_endian, torch.from_numpy(values), values.astype(np.float64)):
        proto = caffe_pb2.BlobProto()
        blobproto.append_values(proto, "data", variant)
        assert list(proto.data) == values.reshape(-1).tolist()
    transposed = caffe_pb2.BlobProto()
    blobproto.append_values(transposed, "data", values.T)  # not contiguous: flattened in its own order
    assert list(transposed.data) == values.T.reshape(-1).tolist()
    empty = caffe_pb2.BlobProto()
    blobproto.append_values(empty, "data", np.zeros((0, 3), np.float32))
    assert not empty.ListFields()


# ================================================================ mean files
GOLDEN_DATA = GOLDEN / "data"


def first_datum() -> np.ndarray:
    with lmdb.open(str(GOLDEN_DATA / "db_lmdb"), readonly=True, lock=False) as env, env.begin() as txn:
        _, value = next(iter(txn.cursor()))
    datum = caffe_pb2.Datum.FromString(value)
    return np.frombuffer(datum.data, np.uint8).reshape(datum.channels, datum.height, datum.width)


def test_read_mean_matches_caffes_mean_subtraction() -> None:
    mean = binaryproto.read_mean(GOLDEN_DATA / "mean.binaryproto")
    assert mean.shape == (3, 8, 8) and mean.dtype == np.float32
    caffe_output = np.load(GOLDEN_DATA / "lmdb_meanfile.npz")["forward0/data"][0]
    np.testing.assert_array_equal(first_datum().astype(np.float32) - mean, caffe_output)


def test_write_mean_uses_legacy_fields_and_round_trips(tmp_path: pathlib.Path) -> None:
    mean = np.random.default_rng(0).uniform(0, 255, (3, 4, 5)).astype(np.float32)
    path = tmp_path / "mean.binaryproto"
    binaryproto.write_mean(path, mean)
    raw = caffe_pb2.BlobProto.FromString(path.read_bytes())
    assert (raw.num, raw.channels, raw.height, raw.width) == (1, 3, 4, 5)
    assert not raw.HasField("shape") and not raw.double_data and len(raw.data) == 60
    np.testing.assert_array_equal(binaryproto.read_mean(path), mean)
    binaryproto.write_mean(path, mean[None].astype(np.float64))
    np.testing.assert_array_equal(binaryproto.read_mean(path), mean)
    assert binaryproto.read_blob(path).shape == (1, 3, 4, 5)


def test_golden_mean_rewritten_reads_the_same(tmp_path: pathlib.Path) -> None:
    mean = binaryproto.read_mean(GOLDEN_DATA / "mean.binaryproto")
    binaryproto.write_mean(tmp_path / "m.binaryproto", mean)
    np.testing.assert_array_equal(binaryproto.read_mean(tmp_path / "m.binaryproto"), mean)


def test_mean_shape_errors(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match=r"a mean image has shape .*, got \(2, 3, 4, 5\)"):
        binaryproto.write_mean(tmp_path / "m.binaryproto", np.zeros((2, 3, 4, 5)))
    batch = blobproto.array_to_proto(np.zeros((2, 3, 4, 5), np.float32))
    prototxt.write_binary(tmp_path / "b.binaryproto", batch)
    with pytest.raises(prototxt.ProtoFileError, match=r"holds a blob of shape \(2, 3, 4, 5\); a mean"):
        binaryproto.read_mean(tmp_path / "b.binaryproto")


# ================================================================ HDF5 weights
SHARED_NET = """
name: "shared"
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "a" type: "InnerProduct" bottom: "x" top: "ya" param { name: "w" } param { name: "b" }
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 }
                              bias_filler { type: "gaussian" std: 1 } } }
layer { name: "relu" type: "ReLU" bottom: "ya" top: "ya" }
layer { name: "b" type: "InnerProduct" bottom: "ya" top: "yb" param { name: "w" } param { name: "own" }
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 }
                              bias_filler { type: "gaussian" std: 1 } } }
"""


def shared_net(seed: int) -> recaffe.Net:
    return small_net(seed, text_format.Parse(SHARED_NET, caffe_pb2.NetParameter()))


def test_hdf5_round_trip_omits_shared_params(tmp_path: pathlib.Path) -> None:
    source, target = shared_net(1), shared_net(2)
    path = tmp_path / "w.caffemodel.h5"
    source.save_hdf5(path)
    with h5py.File(path, "r") as f:
        assert sorted(f["data"]) == ["a", "b", "in", "relu"]  # every layer gets a group
        assert sorted(f["data/a"]) == ["0", "1"] and sorted(f["data/b"]) == ["1"]
        assert f["data/a/0"].dtype == np.float32 and f["data/a/0"].shape == (3, 3)
        assert "diff" not in f
    target.copy_trained_layers_from(path)  # dispatches on the HDF5 signature
    assert_params_equal(source, target)
    assert target.layer_params["b"][0].data.data_ptr() == target.layer_params["a"][0].data.data_ptr()


def test_hdf5_diffs_cover_shared_params(tmp_path: pathlib.Path) -> None:
    net = shared_net(1)
    for blob in net.params:
        blob.diff.copy_(torch.randn(blob.shape))
    net.save_hdf5(tmp_path / "d.h5", write_diff=True)
    with h5py.File(tmp_path / "d.h5", "r") as f:
        assert sorted(f["diff/b"]) == ["0", "1"]
        np.testing.assert_array_equal(f["diff/b/1"][()], net.layer_params["b"][1].diff.numpy())


def write_h5(path: pathlib.Path, datasets: dict[str, np.ndarray]) -> None:
    with h5py.File(path, "w") as f:
        f.create_group("data")
        for key, value in datasets.items():
            f.create_dataset(key, data=value)


def test_hdf5_missing_owner_param_and_wrong_shape(tmp_path: pathlib.Path) -> None:
    net = shared_net(1)
    write_h5(tmp_path / "m.h5", {"data/a/1": np.zeros(3)})
    with pytest.raises(ValueError, match=r"m.h5: layer 'a': incompatible number of blobs \(param 0 missing"):
        net.load_hdf5(tmp_path / "m.h5")
    write_h5(tmp_path / "s.h5", {"data/a/0": np.zeros((3, 2)), "data/a/1": np.zeros(3)})
    with pytest.raises(ValueError, match=r"s.h5: layer 'a': cannot load param 0; shape mismatch. "
                       r"Source shape is \(3, 2\), target shape is \(3, 3\)"):
        net.load_hdf5(tmp_path / "s.h5")
    write_h5(tmp_path / "x.h5",
             {"data/a/0": np.zeros((3, 3)), "data/a/1": np.zeros(3), "data/a/2": np.zeros(1)})
    with pytest.raises(ValueError, match=r"incompatible number of blobs \(3 in the file, 2 in the net\)"):
        net.load_hdf5(tmp_path / "x.h5")


def test_hdf5_integer_and_double_datasets_convert(tmp_path: pathlib.Path) -> None:
    net = shared_net(1)
    write_h5(tmp_path / "i.h5", {"data/a/0": np.arange(9, dtype=">i4").reshape(3, 3),
                                 "data/a/1": np.array([0.1, 0.2, 0.3], dtype=">f8")})
    net.load_hdf5(tmp_path / "i.h5")
    assert net.layer_params["a"][0].data.reshape(-1).tolist() == list(range(9))
    np.testing.assert_array_equal(net.layer_params["a"][1].data.numpy(), np.float32([0.1, 0.2, 0.3]))


def test_hdf5_file_without_data_group_or_with_bad_entries(tmp_path: pathlib.Path) -> None:
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.create_group("weights")
    with pytest.raises(ValueError, match="it has no /data group. It is not a Caffe HDF5 weights file"):
        shared_net(1).load_hdf5(tmp_path / "empty.h5")
    write_h5(tmp_path / "str.h5", {"data/a/0": np.array([b"abc"] * 9).reshape(3, 3)})
    with pytest.raises(ValueError, match="/data/a/0 is not a numeric dataset"):
        shared_net(1).load_hdf5(tmp_path / "str.h5")
    write_h5(tmp_path / "flat.h5", {"data/a": np.zeros(3)})
    with pytest.raises(ValueError, match="/data/a is not a group of datasets"):
        shared_net(1).load_hdf5(tmp_path / "flat.h5")


def test_hdf5_unknown_layers_are_ignored(tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    net = shared_net(1)
    before = params_of(net)
    write_h5(tmp_path / "u.h5", {"data/other/0": np.zeros(2)})
    with caplog.at_level(logging.INFO, logger="recaffe.io.weights"):
        net.load_hdf5(tmp_path / "u.h5")
    assert "Ignoring source layer other" in caplog.text
    assert all(torch.equal(x, y) for k in before for x, y in zip(before[k], params_of(net)[k]))
