"""Draw a NetParameter as a graph: layers as records, blobs as octagons (needs pydot + Graphviz).

pydot is the optional extra ``draw`` (``pip install recaffe[draw]``); rendering also needs
Graphviz's ``dot`` program. Without pydot, the drawing functions raise ImportError.
"""

from __future__ import annotations

from typing import Any

from recaffe.io import atomic
from recaffe.proto import caffe_pb2

__all__ = [
    "BLOB_STYLE", "LAYER_STYLE_DEFAULT", "NEURON_LAYER_STYLE", "choose_color_by_layertype",
    "draw_net", "draw_net_to_file", "get_edge_label", "get_layer_label", "get_layer_lr_mult",
    "get_pooling_types_dict", "get_pydot_graph",
]

LAYER_STYLE_DEFAULT = {"shape": "record", "fillcolor": "#6495ED", "style": "filled"}
NEURON_LAYER_STYLE = {"shape": "record", "fillcolor": "#90EE90", "style": "filled"}
BLOB_STYLE = {"shape": "octagon", "fillcolor": "#E0E0E0", "style": "filled"}

_LEARNING_TYPES = ("Convolution", "Deconvolution", "InnerProduct")
_TYPE_COLORS = {"Convolution": "#FF5050", "Deconvolution": "#FF5050", "Pooling": "#FF9900",
                "InnerProduct": "#CC33FF"}


def _pydot() -> Any:
    try:
        import pydot
    except ImportError as e:
        raise ImportError("caffe.draw needs pydot (and Graphviz's dot to render): "
                          "pip install recaffe[draw]") from e
    return pydot


def get_pooling_types_dict() -> dict[int, str]:
    """Pooling method number -> name (0 -> "MAX"...)."""
    values = caffe_pb2.PoolingParameter.PoolMethod.DESCRIPTOR.values_by_name
    return {v.number: name for name, v in values.items()}


def get_edge_label(layer: caffe_pb2.LayerParameter) -> str:
    """The label of a layer's outgoing edges: batch size for Data, num_output for learning layers."""
    if layer.type == "Data":
        return f"Batch {layer.data_param.batch_size}"
    if layer.type in ("Convolution", "Deconvolution"):
        return str(layer.convolution_param.num_output)
    if layer.type == "InnerProduct":
        return str(layer.inner_product_param.num_output)
    return '""'


def get_layer_lr_mult(layer: caffe_pb2.LayerParameter) -> tuple[float, float]:
    """(weights, bias) lr_mult of a Convolution, Deconvolution or InnerProduct layer."""
    if layer.type not in _LEARNING_TYPES:
        raise ValueError(f"{layer.type} layers do not have a learning rate multiplier")
    specs = list(layer.param)
    if len(specs) > 2:
        raise ValueError("Could not parse the learning rate multiplier")
    mults = [spec.lr_mult for spec in specs] + [1.0] * (2 - len(specs))
    return mults[0], mults[1]


def get_layer_label(layer: caffe_pb2.LayerParameter, rankdir: str, display_lrm: bool = False) -> str:
    """A layer's node label: name, (type), kernel/stride/pad for spatial layers, lr mults on request.

    Parts are joined by newlines for horizontal layouts and by spaces for vertical ones (TB, BT).
    """
    separator = " " if rankdir in ("TB", "BT") else r"\n"
    parts = [layer.name]
    if layer.type == "Pooling":
        parts.append(f"({layer.type} {get_pooling_types_dict()[layer.pooling_param.pool]})")
    else:
        parts.append(f"({layer.type})")
    if layer.type == "Pooling":
        p = layer.pooling_param
        kernel, stride, pad = p.kernel_size, p.stride, p.pad
    elif layer.type in ("Convolution", "Deconvolution"):
        c = layer.convolution_param
        kernel = c.kernel_size[0] if len(c.kernel_size) else 1
        stride = c.stride[0] if len(c.stride) else 1
        pad = c.pad[0] if len(c.pad) else 0
    if layer.type in ("Convolution", "Deconvolution", "Pooling"):
        parts.append(separator.join([f"kernel size: {kernel}", f"stride: {stride}", f"pad: {pad}"]))
    if display_lrm and layer.type in _LEARNING_TYPES:
        weights, bias = get_layer_lr_mult(layer)
        if weights or bias:
            parts.append(f"lr mult: {weights:.1f}, {bias:.1f}")
    return '"' + separator.join(parts) + '"'  # quoted, so colons survive DOT


def choose_color_by_layertype(layertype: str) -> str:
    return _TYPE_COLORS.get(layertype, "#6495ED")


def _in_phase(layer: caffe_pb2.LayerParameter, phase: int | None) -> bool:
    """Whether to draw ``layer`` for ``phase`` (None: all); only the rules' phases count."""
    if phase is None:
        return True
    if layer.include and layer.exclude:
        raise ValueError(f"layer {layer.name} has both include and exclude specified.")
    included = not layer.include or any(rule.phase == phase for rule in layer.include)
    return included and not any(rule.phase == phase for rule in layer.exclude)


def get_pydot_graph(caffe_net: caffe_pb2.NetParameter, rankdir: str, label_edges: bool = True,
                    phase: int | None = None, display_lrm: bool = False) -> Any:
    """A ``pydot.Dot`` graph of ``caffe_net`` (layers of ``phase`` only, when given)."""
    pydot = _pydot()
    graph = pydot.Dot(caffe_net.name or "Net", graph_type="digraph", rankdir=rankdir)
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str, str]] = []
    for layer in caffe_net.layer:
        if not _in_phase(layer, phase):
            continue
        label = get_layer_label(layer, rankdir, display_lrm=display_lrm)
        node = f"{layer.name}_{layer.type}"
        if len(layer.bottom) == 1 and len(layer.top) == 1 and layer.bottom[0] == layer.top[0]:
            nodes[node] = pydot.Node(label, **NEURON_LAYER_STYLE)  # an in-place neuron layer
        else:
            nodes[node] = pydot.Node(label, **{**LAYER_STYLE_DEFAULT,
                                               "fillcolor": choose_color_by_layertype(layer.type)})
        for blob in layer.bottom:
            nodes[blob + "_blob"] = pydot.Node(blob, **BLOB_STYLE)
            edges.append((blob + "_blob", node, '""'))
        for blob in layer.top:
            nodes[blob + "_blob"] = pydot.Node(blob)
            edges.append((node, blob + "_blob", get_edge_label(layer) if label_edges else '""'))
    for pydot_node in nodes.values():
        graph.add_node(pydot_node)
    for src, dst, edge_label in edges:
        graph.add_edge(pydot.Edge(nodes[src], nodes[dst], label=edge_label))
    return graph


def draw_net(caffe_net: caffe_pb2.NetParameter, rankdir: str, ext: str = "png", phase: int | None = None,
             display_lrm: bool = False) -> bytes:
    """The net drawn by Graphviz in format ``ext`` (png, svg, pdf, dot, raw...).

    Raises FileNotFoundError saying how to install Graphviz when its ``dot`` program is missing."""
    graph = get_pydot_graph(caffe_net, rankdir, phase=phase, display_lrm=display_lrm)
    try:
        return graph.create(format=ext)
    except FileNotFoundError as e:  # pydot could not run Graphviz's dot
        raise FileNotFoundError(f"drawing a net needs Graphviz's 'dot' program, which is not on PATH ({e}): "
                           f"install Graphviz (apt-get install graphviz, brew install graphviz, "
                           f"conda install graphviz, or https://graphviz.org/download/)") from e


def draw_net_to_file(caffe_net: caffe_pb2.NetParameter, filename: str, rankdir: str = "LR",
                     phase: int | None = None, display_lrm: bool = False) -> None:
    """Draw the net into ``filename``, in the format its extension names ('.raw': DOT text).
    The file is written only once the drawing succeeded (no empty file without Graphviz)."""
    ext = filename[filename.rfind(".") + 1:]
    image = draw_net(caffe_net, rankdir, ext, phase, display_lrm)
    atomic.write_bytes(filename, image, "drawing")
