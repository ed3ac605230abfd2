"""The upgrade tools: legacy nets and solvers rewritten in the current format, round trips."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from recaffe.io import prototxt
from recaffe.net import Net
from recaffe.proto import caffe_pb2

V1_NET = """name: "legacy"
input: "data"
input_dim: 2 input_dim: 3 input_dim: 1 input_dim: 1
layers { name: "ip" type: INNER_PRODUCT bottom: "data" top: "ip"
         inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layers { name: "relu" type: RELU bottom: "ip" top: "ip" }
"""


def test_net_text_round_trip(cli, tmp_path: pathlib.Path) -> None:
    (tmp_path / "v1.prototxt").write_text(V1_NET)
    result = cli("upgrade_net_proto_text", tmp_path / "v1.prototxt", tmp_path / "new.prototxt")
    assert result.status == 0, result.err
    assert f"Wrote upgraded NetParameter text proto to {tmp_path / 'new.prototxt'}" in result.messages
    new = prototxt.read_text(tmp_path / "new.prototxt", caffe_pb2.NetParameter())
    assert not new.layers and not new.input
    assert [(layer.name, layer.type) for layer in new.layer] == [
        ("input", "Input"), ("ip", "InnerProduct"), ("relu", "ReLU")]
    assert list(new.layer[0].input_param.shape[0].dim) == [2, 3, 1, 1]
    assert Net(str(tmp_path / "new.prototxt"), caffe_pb2.TEST).blobs["ip"].shape == (2, 4)
    # a second pass has nothing to do: it says so and writes the same net
    again = cli("upgrade_net_proto_text", tmp_path / "new.prototxt", tmp_path / "again.prototxt")
    assert again.status == 0
    nothing_to_do = f"File already in latest proto format: {tmp_path / 'new.prototxt'}"
    assert any(line.startswith("E") and line.endswith(nothing_to_do) for line in again.err.splitlines())
    assert (tmp_path / "again.prototxt").read_text() == (tmp_path / "new.prototxt").read_text()


def test_numbers_are_written_as_caffe_writes_them(cli, tmp_path: pathlib.Path) -> None:
    (tmp_path / "v1.prototxt").write_text(V1_NET.replace('top: "ip"\n', 'top: "ip" blobs_lr: 1 blobs_lr: 2 '
                                                         'weight_decay: 0.0005\n', 1))
    assert cli("upgrade_net_proto_text", tmp_path / "v1.prototxt", tmp_path / "new.prototxt").status == 0
    text = (tmp_path / "new.prototxt").read_text()
    assert "lr_mult: 1\n" in text and "lr_mult: 2\n" in text and "decay_mult: 0.0005\n" in text
    assert ".0\n" not in text


def test_net_binary_keeps_the_weights(cli, tmp_path: pathlib.Path) -> None:
    old = caffe_pb2.NetParameter(name="legacy")
    layer = old.layers.add(name="ip", type=caffe_pb2.V1LayerParameter.INNER_PRODUCT)
    weights = np.arange(6, dtype=np.float32)
    layer.blobs.add(num=1, channels=1, height=2, width=3, data=weights.tolist())
    prototxt.write_binary(tmp_path / "v1.caffemodel", old)
    result = cli("upgrade_net_proto_binary", tmp_path / "v1.caffemodel", tmp_path / "new.caffemodel")
    assert result.status == 0, result.err
    assert f"Wrote upgraded NetParameter binary proto to {tmp_path / 'new.caffemodel'}" in result.messages
    new = prototxt.read_binary(tmp_path / "new.caffemodel", caffe_pb2.NetParameter())
    assert not new.layers and new.layer[0].type == "InnerProduct"
    assert np.array_equal(np.float32(new.layer[0].blobs[0].data), weights)


def test_solver_text(cli, tmp_path: pathlib.Path) -> None:
    (tmp_path / "old.prototxt").write_text('net: "n.prototxt"\nbase_lr: 0.1\nsolver_type: ADAM\n')
    result = cli("upgrade_solver_proto_text", tmp_path / "old.prototxt", tmp_path / "new.prototxt")
    assert result.status == 0, result.err
    assert "Wrote upgraded SolverParameter text proto to " + str(tmp_path / "new.prototxt") in result.messages
    new = prototxt.read_text(tmp_path / "new.prototxt", caffe_pb2.SolverParameter())
    assert new.type == "Adam" and not new.HasField("solver_type")
    assert not new.HasField("snapshot_prefix")  # reading defaults it; the tool must not write it
    assert new.net == "n.prototxt" and new.base_lr == pytest.approx(0.1)


def test_unreadable_input_exits_2(cli, tmp_path: pathlib.Path) -> None:
    (tmp_path / "bad.prototxt").write_text("layer { nonsense: 1 }\n")
    result = cli("upgrade_net_proto_text", tmp_path / "bad.prototxt", tmp_path / "out.prototxt")
    assert result.status == 2
    assert any("Failed to parse input text file as NetParameter" in line for line in result.err.splitlines())
    assert not (tmp_path / "out.prototxt").exists()
    assert cli("upgrade_solver_proto_text", tmp_path / "missing", tmp_path / "out").status == 2


def test_failed_upgrade_exits_1(cli, tmp_path: pathlib.Path) -> None:
    (tmp_path / "both.prototxt").write_text('solver_type: SGD\ntype: "Adam"\n')
    result = cli("upgrade_solver_proto_text", tmp_path / "both.prototxt", tmp_path / "out.prototxt")
    assert result.status == 1 and "cannot both be given" in result.fatal()


def test_needs_two_paths(cli, tmp_path: pathlib.Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli("upgrade_net_proto_text", tmp_path / "only_one")
    assert exit_info.value.code == 2
