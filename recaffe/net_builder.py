"""Turning a NetParameter into the layer list a Net builds: state filtering and Split insertion."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
from collections import defaultdict
from collections.abc import Iterator

import torch

from recaffe.proto import caffe_pb2

log = logging.getLogger(__name__)

TopIndex = tuple[int, int]  # (layer index, top index)

# the prototxt file of the net being built, where known: errors point at its folder
building_from: contextvars.ContextVar[str | None] = contextvars.ContextVar("building_from", default=None)


@contextlib.contextmanager
def building(source: str | os.PathLike[str] | None) -> Iterator[None]:
    """Set ``building_from`` to ``source`` (a prototxt path, or None) while a net is built."""
    token = building_from.set(None if source is None else os.fspath(source))
    try:
        yield
    finally:
        building_from.reset(token)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the kernels of a net's construction (zero fills, copies of the loaded values) on one
    thread: they are small, and on a machine other processes keep busy, PyTorch's threads wait for
    each other at every one of them (building GoogLeNet took 4x longer on two threads than on one).
    Left alone while other Python threads run: set from the main thread, the count is the one
    other threads see too, and a plain net's forward there must keep its count (its rounding)."""
    count = torch.get_num_threads()
    if count == 1 or threading.active_count() > 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(count)


def state_meets_rule(
    state: caffe_pb2.NetState, rule: caffe_pb2.NetStateRule, layer_name: str = ""
) -> bool:
    """A rule is met iff its phase, level bounds, stages and not_stages all hold for ``state``."""
    if rule.HasField("phase") and rule.phase != state.phase:
        log.debug("layer %s: NetState phase %d differs from the rule's %d",
                  layer_name, state.phase, rule.phase)
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        log.debug("layer %s: NetState level %d is below min_level %d",
                  layer_name, state.level, rule.min_level)
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        log.debug("layer %s: NetState level %d is above max_level %d",
                  layer_name, state.level, rule.max_level)
        return False
    stages = set(state.stage)
    if not set(rule.stage) <= stages:
        log.debug("layer %s: NetState lacks a stage of %s", layer_name, list(rule.stage))
        return False
    if stages & set(rule.not_stage):
        log.debug("layer %s: NetState has a not_stage of %s", layer_name, list(rule.not_stage))
        return False
    return True


def layer_included(layer: caffe_pb2.LayerParameter, state: caffe_pb2.NetState) -> bool:
    """No rules: included. Include rules: included iff any is met. Exclude rules: iff none is."""
    if not layer.include and not layer.exclude:
        return True
    if layer.include and layer.exclude:
        raise ValueError(
            f"layer {layer.name!r}: specify either include rules or exclude rules, not both"
        )
    if layer.include:
        return any(state_meets_rule(state, rule, layer.name) for rule in layer.include)
    return not any(state_meets_rule(state, rule, layer.name) for rule in layer.exclude)


def filter_net(param: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """Caffe's FilterNet: a copy of ``param`` keeping the layers its ``state`` includes."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    del out.layer[:]
    out.layer.extend(layer for layer in param.layer if layer_included(layer, param.state))
    return out


def split_layer_name(layer_name: str, blob_name: str, top_index: int) -> str:
    return f"{blob_name}_{layer_name}_{top_index}_split"


def split_blob_name(layer_name: str, blob_name: str, top_index: int, split_index: int) -> str:
    return f"{blob_name}_{layer_name}_{top_index}_split_{split_index}"


def insert_splits(param: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """Caffe's InsertSplits: a Split layer after every top consumed more than once.

    A top counts one extra consumer when it carries a non-zero explicit ``loss_weight``; the
    Split's first top then takes that weight and the producer's ``loss_weight`` is cleared.
    """
    last_top: dict[str, TopIndex] = {}
    source_of: dict[TopIndex, TopIndex] = {}
    consumers: dict[TopIndex, int] = defaultdict(int)
    loss_weight: dict[TopIndex, float] = {}
    for i, layer in enumerate(param.layer):
        for j, name in enumerate(layer.bottom):
            if name not in last_top:
                raise ValueError(
                    f"Unknown bottom blob {name!r} (layer {layer.name!r}, bottom index {j})"
                )
            source_of[(i, j)] = last_top[name]
            consumers[last_top[name]] += 1
        for j, name in enumerate(layer.top):
            last_top[name] = (i, j)
        for j in range(min(len(layer.loss_weight), len(layer.top))):
            top = last_top[layer.top[j]]
            loss_weight[top] = layer.loss_weight[j]
            if loss_weight[top]:
                consumers[top] += 1

    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    del out.layer[:]
    next_split: dict[TopIndex, int] = defaultdict(int)
    for i, source in enumerate(param.layer):
        layer = out.layer.add()
        layer.CopyFrom(source)
        for j, name in enumerate(layer.bottom):
            top = source_of[(i, j)]
            if consumers[top] > 1:
                producer = param.layer[top[0]].name
                layer.bottom[j] = split_blob_name(producer, name, top[1], next_split[top])
                next_split[top] += 1
        for j, name in enumerate(layer.top):
            count = consumers[(i, j)]
            if count > 1:
                weight = loss_weight.get((i, j), 0.0)
                out.layer.append(_split_layer(layer.name, name, j, count, weight))
                if weight:
                    layer.ClearField("loss_weight")
                    next_split[(i, j)] += 1
    return out


def _split_layer(
    layer_name: str, blob_name: str, top_index: int, count: int, loss_weight: float
) -> caffe_pb2.LayerParameter:
    split = caffe_pb2.LayerParameter(
        name=split_layer_name(layer_name, blob_name, top_index), type="Split", bottom=[blob_name]
    )
    for k in range(count):
        split.top.append(split_blob_name(layer_name, blob_name, top_index, k))
        if loss_weight:
            split.loss_weight.append(loss_weight if k == 0 else 0.0)
    return split
