"""caffe.draw (needs pydot; rendering needs Graphviz's dot)."""

from __future__ import annotations

import shutil

import pytest

from caffe import layers as L
from caffe import params as P
from caffe.proto import caffe_pb2
from recaffe.cli.main import main
from recaffe.io import prototxt

pydot = pytest.importorskip("pydot")
from caffe import draw  # noqa: E402

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")

NET = """
name: "drawn"
layer { name: "data" type: "Data" top: "data" data_param { batch_size: 64 } include { phase: TRAIN } }
layer { name: "input" type: "Input" top: "data" include { phase: TEST } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        param { lr_mult: 1 } param { lr_mult: 2 }
        convolution_param { num_output: 20 kernel_size: 5 stride: 2 pad: 1 } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: AVE kernel_size: 3 } }
layer { name: "relu" type: "ReLU" bottom: "pool" top: "pool" }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip" inner_product_param { num_output: 10 } }
"""


def net() -> caffe_pb2.NetParameter:
    return prototxt.parse_text(NET, caffe_pb2.NetParameter())


def test_labels() -> None:
    layers = {layer.name: layer for layer in net().layer}
    assert draw.get_layer_label(layers["conv"], "LR") == (
        r'"conv\n(Convolution)\nkernel size: 5\nstride: 2\npad: 1"')
    pool = draw.get_layer_label(layers["pool"], "TB")
    assert pool == '"pool (Pooling AVE) kernel size: 3 stride: 1 pad: 0"'
    assert draw.get_layer_label(layers["conv"], "TB", display_lrm=True).endswith('lr mult: 1.0, 2.0"')
    assert draw.get_layer_lr_mult(layers["ip"]) == (1.0, 1.0)
    with pytest.raises(ValueError, match="learning rate multiplier"):
        draw.get_layer_lr_mult(layers["relu"])
    assert draw.get_edge_label(layers["data"]) == "Batch 64"
    assert draw.get_edge_label(layers["conv"]) == "20"
    assert draw.get_edge_label(layers["relu"]) == '""'
    assert draw.get_pooling_types_dict()[P.Pooling.MAX] == "MAX"
    assert draw.choose_color_by_layertype("Pooling") == "#FF9900"


def test_graph_nodes_and_phase_filter() -> None:
    graph = draw.get_pydot_graph(net(), "LR")
    names = {node.get_name().strip('"') for node in graph.get_nodes()}
    assert {"data", "conv", "pool", "ip"} <= names
    assert len(graph.get_edges()) == 10  # one per bottom and per top
    train = draw.get_pydot_graph(net(), "LR", phase=caffe_pb2.TRAIN)
    labels = " ".join(node.get_name() for node in train.get_nodes())
    assert "(Data)" in labels and "(Input)" not in labels
    assert draw.LAYER_STYLE_DEFAULT["fillcolor"] == "#6495ED"  # drawing leaves the styles alone


@needs_dot
def test_draw_net_to_file(tmp_path) -> None:
    assert draw.draw_net(net(), "LR", ext="svg").lstrip().startswith(b"<?xml")
    path = tmp_path / "net.png"
    draw.draw_net_to_file(net(), str(path), "TB", phase=caffe_pb2.TEST, display_lrm=True)
    assert path.read_bytes().startswith(b"\x89PNG")
    spec = L.ReLU(L.Input(shape=dict(dim=[1])), in_place=True).to_proto()
    assert b"digraph" in draw.draw_net(spec, "BT", ext="dot")


def test_without_graphviz_no_file_is_left_and_the_error_says_how_to_install_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no dot anywhere
    path = tmp_path / "net.png"
    with pytest.raises(FileNotFoundError, match=r"needs Graphviz's 'dot' program.*install Graphviz \(apt"):
        draw.draw_net_to_file(net(), str(path))
    assert not path.exists()
    net_file = tmp_path / "net.prototxt"
    net_file.write_text(str(net()))
    assert main(["draw_net", str(net_file), str(path)]) == 1  # a FATAL line, not a traceback
    assert not path.exists()
