"""A built Net as a graph for the exporters: layers in prototxt order, every blob write a value.

Split layers disappear (their tops are their bottom), data layers (a layer with no bottoms and
no parameters: Input, Data, DummyData, ...) become the graph's inputs, and an in-place layer's
top gets a new value name, so every value is written once: the last write of a blob keeps the
blob's name, earlier ones are ``blob/writer`` (``conv1/conv1``, then ``conv1`` from relu1).
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field

from recaffe import forks
from recaffe.layer import Layer
from recaffe.net import Net
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS


class ExportError(ValueError):
    """A net (or one of its layers) that cannot be exported exactly; the message says why."""


@dataclass
class Node:
    """One layer: its recaffe Layer, bottom and top value names and their shapes."""

    layer: Layer
    bottoms: list[str]
    tops: list[str]
    bottom_shapes: list[tuple[int, ...]]
    top_shapes: list[tuple[int, ...]]
    shared: dict[int, tuple[str, int]] = field(default_factory=dict)  # param j -> (owner layer, k)

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def type(self) -> str:
        return self.layer.type

    def axis(self, axis: int, which: int = 0) -> int:
        """A (possibly negative) axis of bottom ``which`` made non-negative."""
        return axis % max(len(self.bottom_shapes[which]), 1)

    def crop_offsets(self) -> tuple[int, list[int]]:
        """Crop's first cropped axis and its offset on every cropped axis."""
        p = self.layer.param.crop_param
        axis = self.axis(p.axis)
        count = len(self.bottom_shapes[0]) - axis
        offsets = list(p.offset) if len(p.offset) > 1 else [p.offset[0] if p.offset else 0] * count
        return axis, offsets

    def check_pooling(self) -> None:
        """Pooling that no exporter can give exactly: STOCHASTIC, or MAX with its mask top."""
        if self.layer.param.pooling_param.pool == caffe_pb2.PoolingParameter.STOCHASTIC:
            raise self.error("STOCHASTIC pooling draws from Caffe's random stream; it has no exact "
                             "PyTorch or ONNX form")
        if len(self.tops) > 1:
            raise self.error("the MAX mask top (argmax indices) has no exact PyTorch or ONNX form")

    def error(self, why: str) -> ExportError:
        return ExportError(f"layer {self.name!r} (type {self.type}): {why}")


@dataclass
class Graph:
    name: str
    inputs: list[tuple[str, tuple[int, ...]]]  # (value name, shape)
    nodes: list[Node]
    outputs: list[tuple[str, str]]  # (blob name, value name)
    loss_weights: dict[str, float]  # blob name -> loss weight, for loss tops
    phase: int


def walk(net: Net) -> Graph:
    writes = _writes(net)  # blob name -> how many layers write it
    seen: dict[str, int] = {}
    current: dict[str, str] = {}  # blob name -> its latest value name

    def write(blob: str, writer: str) -> str:
        """The last write of a blob takes its plain name, earlier ones ``blob/writer``."""
        seen[blob] = seen.get(blob, 0) + 1
        current[blob] = blob if seen[blob] == writes[blob] else f"{blob}/{writer}"
        return current[blob]

    inputs: list[tuple[str, tuple[int, ...]]] = []
    nodes: list[Node] = []
    loss_weights: dict[str, float] = {}
    owners = _param_owners(net)
    for layer_id, layer in enumerate(net.layers):
        bottoms = [net.blob_names[b] for b in net.bottom_id_vecs[layer_id]]
        tops = [net.blob_names[t] for t in net.top_id_vecs[layer_id]]
        top_shapes = [net.blob_list[t].shape for t in net.top_id_vecs[layer_id]]
        if layer.type == "Split":
            for top in tops:
                current[top] = current[bottoms[0]]
            continue
        if not bottoms and not layer.blobs:
            inputs += [(write(top, layer.name), shape) for top, shape in zip(tops, top_shapes)]
            continue
        node = Node(layer, [current[b] for b in bottoms], [], [net.blob_list[b].shape for b in
                    net.bottom_id_vecs[layer_id]], top_shapes, owners.get(layer_id, {}))
        node.tops = [write(top, layer.name) for top in tops]
        _check_bvlc_layer(node)
        loss_weights.update({top: float(layer.loss(i)) for i, top in enumerate(tops) if layer.loss(i)})
        nodes.append(node)
    outputs = [(name, current[name]) for name in net.outputs]
    return Graph(net.name, inputs, nodes, outputs, loss_weights, net.phase)


def _check_bvlc_layer(node: Node) -> None:
    """Exporters write BVLC's layers: a fork's own layer class (SegNet's Dropout, PSPNet's BN, ...)
    would be exported as the BVLC type of the same name, silently wrong."""
    dialect = forks.layer_dialect(node.layer.param)
    bvlc = LAYERS.get(node.type) if node.type in LAYERS.names() else None
    if dialect is not None and type(node.layer) is not bvlc:
        raise node.error(f"is the {dialect} dialect's layer ({forks.get_dialect(dialect).fork}); export "
                         f"writes BVLC Caffe's layers only")


def _writes(net: Net) -> dict[str, int]:
    counts: dict[str, int] = {}
    for layer_id, layer in enumerate(net.layers):
        if layer.type != "Split":
            for t in net.top_id_vecs[layer_id]:
                counts[net.blob_names[t]] = counts.get(net.blob_names[t], 0) + 1
    return counts


def _param_owners(net: Net) -> dict[int, dict[int, tuple[str, int]]]:
    """layer id -> {param index: (owner layer name, owner param index)} for shared params."""
    shared: dict[int, dict[int, tuple[str, int]]] = {}
    for net_param_id, owner in enumerate(net.param_owners):
        if owner >= 0:
            layer_id, param_id = net.param_layer_indices[net_param_id]
            owner_layer, owner_param = net.param_layer_indices[owner]
            shared.setdefault(layer_id, {})[param_id] = (net.layer_names[owner_layer], owner_param)
    return shared


def identifiers(names: list[str], reserved: frozenset[str] = frozenset()) -> dict[str, str]:
    """A distinct Python identifier for each name (``inception_3a/1x1`` -> ``inception_3a_1x1``)."""
    taken = set(reserved)
    result: dict[str, str] = {}
    for name in names:
        base = re.sub(r"\W", "_", name)
        if not base or base[0].isdigit() or keyword.iskeyword(base):
            base = f"_{base}"
        ident, n = base, 1
        while ident in taken:
            n += 1
            ident = f"{base}_{n}"
        taken.add(ident)
        result[name] = ident
    return result
