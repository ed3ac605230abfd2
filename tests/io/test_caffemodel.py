"""The streamed caffemodel reader gives what parsing the whole file gives, in every encoding."""

from __future__ import annotations

import pathlib
import struct
import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest
import torch
from google.protobuf.internal import encoder, wire_format

import recaffe
from recaffe.io import blobproto, caffemodel, legacy, prototxt
from recaffe.proto import caffe_pb2
from tests.io.test_formats import legacy_blob, small_net, small_net_param


def delimited(number: int, payload: bytes) -> bytes:
    return encoder._VarintBytes(wire_format.PackTag(number, wire_format.WIRETYPE_LENGTH_DELIMITED)) + \
        encoder._VarintBytes(len(payload)) + payload


def streamed(path: pathlib.Path, shapes: dict[str, list[tuple[int, ...]]],
             dtype: torch.dtype = torch.float32) -> dict[str, list[tuple[torch.Tensor, torch.Tensor | None]]]:
    """Every blob of the file loaded into fresh blobs of the given shapes: (data, diff or None)."""
    loaded = {}
    for name, blobs in caffemodel.read_trained_layers(path):
        targets = [recaffe.Blob(shape, dtype=dtype) for shape in shapes[name]]
        for stored, target in zip(blobs, targets, strict=True):
            stored.load_into(target)
        loaded[name] = [(t.data.clone(), t.diff.clone() if t.has_diff else None) for t in targets]
    return loaded


def parsed(path: pathlib.Path) -> dict[str, list[caffe_pb2.BlobProto]]:
    param = prototxt.read_binary(path, caffe_pb2.NetParameter())
    return {name: list(blobs) for name, blobs in legacy.trained_layers(param, str(path))}


def assert_same_as_parsed(path: pathlib.Path, dtype: torch.dtype = torch.float32) -> None:
    """Streamed values equal those the parsed message loads (blobproto.load_into_blob)."""
    expected = parsed(path)
    shapes = {name: [tuple(b.shape.dim) for b in blobs] for name, blobs in expected.items()}
    got = streamed(path, shapes, dtype)
    assert got.keys() == expected.keys()
    for name, blobs in expected.items():
        for (data, diff), proto in zip(got[name], blobs, strict=True):
            reference = recaffe.Blob(data.shape, dtype=dtype)
            blobproto.load_into_blob(reference, proto)
            assert torch.equal(data, reference.data)
            assert (diff is None) == (not reference.has_diff)
            assert diff is None or torch.equal(diff, reference.diff)


def blob_proto(values: list[float], double: bool = False,
               diff: list[float] | None = None) -> caffe_pb2.BlobProto:
    proto = caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=[len(values)]))
    (proto.double_data if double else proto.data).extend(values)
    if diff is not None:
        (proto.double_diff if double else proto.diff).extend(diff)
    return proto


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float_double_and_diff_values_load_exactly(tmp_path: pathlib.Path, dtype: torch.dtype) -> None:
    param = caffe_pb2.NetParameter(name="n")
    param.layer.add(name="a").blobs.extend([blob_proto([0.1, -2.5, 3e-8]), blob_proto([7.0])])
    param.layer.add(name="b").blobs.extend([blob_proto([1 / 3, 2 / 3], double=True, diff=[0.25, 1e-300])])
    param.layer.add(name="c").blobs.extend([blob_proto([5.5], diff=[-1.5])])
    path = tmp_path / "w.caffemodel"
    path.write_bytes(param.SerializeToString())
    assert_same_as_parsed(path, dtype)


def test_unpacked_and_split_values_load_like_protobuf_reads_them(tmp_path: pathlib.Path) -> None:
    shape = caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=[4])).SerializeToString()
    data = caffe_pb2.BlobProto.DESCRIPTOR.fields_by_name["data"].number
    unpacked = shape + b"".join(encoder._VarintBytes(wire_format.PackTag(data, wire_format.WIRETYPE_FIXED32))
                                + struct.pack("<f", v) for v in (1.0, 2.0, 3.0, 4.0))
    split = shape + caffe_pb2.BlobProto(data=[5.0, 6.0]).SerializeToString() + \
        caffe_pb2.BlobProto(data=[7.0, 8.0]).SerializeToString()
    layer = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name["blobs"].number
    net = caffe_pb2.NetParameter.DESCRIPTOR.fields_by_name["layer"].number
    body = caffe_pb2.LayerParameter(name="ip").SerializeToString() + delimited(layer, unpacked) + \
        delimited(layer, split)
    path = tmp_path / "odd.caffemodel"
    path.write_bytes(caffe_pb2.NetParameter(name="odd").SerializeToString() + delimited(net, body))
    assert [list(b.data) for b in parsed(path)["ip"]] == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert_same_as_parsed(path)


def test_v0_and_v1_files_give_the_upgraded_names(tmp_path: pathlib.Path) -> None:
    v1 = caffe_pb2.NetParameter(name="v1")
    v1.layers.add(name="ip", type=caffe_pb2.V1LayerParameter.INNER_PRODUCT).blobs.extend(
        [legacy_blob(np.arange(6, dtype=np.float32).reshape(2, 3))])
    (tmp_path / "v1.caffemodel").write_bytes(v1.SerializeToString())
    v0 = caffe_pb2.NetParameter(name="v0")
    v0.layers.add(layer=caffe_pb2.V0LayerParameter(name="pad", type="padding"))
    v0.layers.add(layer=caffe_pb2.V0LayerParameter(name="conv", type="conv", blobs=[blob_proto([2.0])]))
    (tmp_path / "v0.caffemodel").write_bytes(v0.SerializeToString())
    assert [name for name, _ in caffemodel.read_trained_layers(tmp_path / "v1.caffemodel")] == ["ip"]
    assert [name for name, _ in caffemodel.read_trained_layers(tmp_path / "v0.caffemodel")] == ["conv"]
    for name in ("v0", "v1"):
        expected = parsed(tmp_path / f"{name}.caffemodel")
        got = {n: [b.header for b in blobs] for n, blobs in caffemodel.read_trained_layers(
            tmp_path / f"{name}.caffemodel")}
        assert {n: [blobproto.proto_shape(b) for b in blobs] for n, blobs in got.items()} == \
            {n: [blobproto.proto_shape(b) for b in blobs] for n, blobs in expected.items()}


def test_truncated_file_is_named(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "cut.caffemodel"
    small_net(seed=1).save(path)
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(prototxt.ProtoFileError, match=r"cut.caffemodel' is not a binary NetParameter"):
        small_net(seed=2).copy_trained_layers_from(path)


def test_value_count_mismatch_names_the_file(tmp_path: pathlib.Path) -> None:
    weights = small_net(seed=1).to_proto()
    del weights.layer[1].blobs[1].data[-1]
    path = tmp_path / "short.caffemodel"
    path.write_bytes(weights.SerializeToString())
    with pytest.raises(ValueError, match=r"short.caffemodel: BlobProto of shape \(4,\) holds 3 data values, "
                                         r"expected 4"):
        small_net(seed=2).copy_trained_layers_from(path)


def big_net_param() -> caffe_pb2.NetParameter:
    """``small_net_param`` with an 8 MB ip1 (400 x 5000 floats)."""
    param = small_net_param()
    param.layer[1].inner_product_param.num_output = 400
    param.layer[0].input_param.shape[0].dim[1] = 5000
    return param


def traced_peak(call: Callable[[], object]) -> int:
    """The peak of Python-side allocations (tracemalloc) while ``call`` runs, in bytes."""
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_loading_holds_neither_the_file_nor_the_message(tmp_path: pathlib.Path) -> None:
    """Python-side allocations while loading stay far below the weights (the old reader held 2x)."""
    param = big_net_param()
    source = small_net(seed=1, param=param)
    path = tmp_path / "big.caffemodel"
    source.save(path)
    target = recaffe.Net(param, recaffe.TEST)
    assert traced_peak(lambda: target.copy_trained_layers_from(path)) < path.stat().st_size / 20
    assert torch.equal(target.layer_params["ip1"][0].data, source.layer_params["ip1"][0].data)


@pytest.mark.parametrize(("tail", "problem"), [
    (b"\x00\x01", "field number 0 at byte"),
    (b"\x0f", "unsupported wire type 7 at byte"),
    (b"\x0a\xff", "truncated varint at byte"),
    (b"\x0a\x05ab", "field 1 at byte [0-9]+ runs past the end of its message"),
])
def test_a_damaged_field_is_named(tmp_path: pathlib.Path, tail: bytes, problem: str) -> None:
    """The fields are decoded in the reader's window: damage at the end of the file still reads as
    protobuf would report it, naming the file and the byte."""
    path = tmp_path / "bad.caffemodel"
    small_net(seed=1).save(path)
    path.write_bytes(path.read_bytes() + tail)
    with pytest.raises(prototxt.ProtoFileError,
                       match=rf"bad.caffemodel' is not a binary NetParameter \({problem}"):
        small_net(seed=2).copy_trained_layers_from(path)
