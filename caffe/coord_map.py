"""Coordinate maps between the tops of a NetSpec graph, to align and crop feature maps.

A map is ``(axis, scale, shift)``: a position ``x`` of the input corresponds to the position
``scale · x + shift`` of the output, on every spatial axis from ``axis`` on (``axis`` None:
any axis; scale and shift may be arrays, one entry per spatial axis). Pointwise layers map by
the identity ``(None, 1, 0)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from caffe.net_spec import Function, Top
from caffe.net_spec import layers as L

__all__ = [
    "PASS_THROUGH_LAYERS", "AxisMismatchException", "UndefinedMapException", "compose",
    "conv_params", "coord_map", "coord_map_from_to", "crop", "crop_params", "inverse",
]

CoordMap = tuple[Any, Any, Any]

PASS_THROUGH_LAYERS = ["AbsVal", "BatchNorm", "Bias", "BNLL", "Dropout", "Eltwise", "ELU", "Log",
                       "LRN", "Exp", "MVN", "Power", "ReLU", "PReLU", "Scale", "Sigmoid", "Split",
                       "TanH", "Threshold"]

_LEGACY_FIELDS = {"pad_h", "pad_w", "kernel_h", "kernel_w", "stride_h", "stride_w"}


class UndefinedMapException(Exception):
    """The layer has no coordinate map (e.g. InnerProduct)."""


class AxisMismatchException(Exception):
    """Two maps act on different axes and cannot be composed."""


def conv_params(fn: Function) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(axis, stride, effective kernel extent (k−1)·dilation+1, pad) of a Convolution,
    Deconvolution, Im2col (``convolution_param``) or Pooling (its own keywords) function."""
    p = fn.params.get("convolution_param", fn.params)
    if _LEGACY_FIELDS & set(fn.params):
        raise AssertionError("cropping does not support legacy _h/_w params")
    kernel = np.array(p["kernel_size"], ndmin=1)
    dilation = np.array(p.get("dilation", 1), ndmin=1)
    return (p.get("axis", 1), np.array(p.get("stride", 1), ndmin=1), (kernel - 1) * dilation + 1,
            np.array(p.get("pad", 0), ndmin=1))


def crop_params(fn: Function) -> tuple[int, np.ndarray]:
    """(axis, offset) of a Crop function, with Crop's defaults (axis 2, offset 0)."""
    p = fn.params.get("crop_param", fn.params)
    return p.get("axis", 2), np.array(p.get("offset", 0), ndmin=1)


def coord_map(fn: Function) -> CoordMap:
    """The map from ``fn``'s bottoms to its tops; UndefinedMapException if it has none."""
    if fn.type_name in ("Convolution", "Pooling", "Im2col"):
        axis, stride, extent, pad = conv_params(fn)
        return axis, 1 / stride, (pad - (extent - 1) / 2) / stride
    if fn.type_name == "Deconvolution":
        axis, stride, extent, pad = conv_params(fn)
        return axis, stride, (extent - 1) / 2 - pad
    if fn.type_name in PASS_THROUGH_LAYERS:
        return None, 1, 0
    if fn.type_name == "Crop":
        axis, offset = crop_params(fn)
        return axis - 1, 1, -offset  # Crop's axis counts the channel axis the map does not
    raise UndefinedMapException(f"no coordinate map for {fn.type_name} layers")


def compose(base_map: CoordMap, next_map: CoordMap) -> CoordMap:
    """``next_map`` after ``base_map``: scales multiply, the second shift is scaled by the first scale."""
    ax1, a1, b1 = base_map
    ax2, a2, b2 = next_map
    if ax1 is None:
        axis = ax2
    elif ax2 is None or ax1 == ax2:
        axis = ax1
    else:
        raise AxisMismatchException(f"cannot compose maps on axes {ax1} and {ax2}")
    return axis, a1 * a2, a1 * b2 + b1


def inverse(coord_map: CoordMap) -> CoordMap:
    """The map back from output to input coordinates."""
    axis, a, b = coord_map
    return axis, 1 / a, -b / a


def _mappable_bottoms(top: Top) -> tuple[Top, ...]:
    # a Crop's second bottom only gives the output size: coordinates flow from the first alone
    return top.fn.inputs[:1] if top.fn.type_name == "Crop" else top.fn.inputs


def _walk(top: Top) -> Iterator[tuple[Top, CoordMap]]:
    """Each ancestor reachable through spatial layers (``top`` itself first) with the map from its
    coordinates to ``top``'s, depth first; an ancestor reached twice comes again with its newer map."""
    maps: dict[Top, CoordMap] = {top: (None, 1, 0)}
    frontier = [top]
    while frontier:
        current = frontier.pop()
        yield current, maps[current]
        try:
            step = coord_map(current.fn)
        except UndefinedMapException:
            continue
        for bottom in _mappable_bottoms(current):
            maps[bottom] = compose(maps[current], step)
            frontier.append(bottom)


def coord_map_from_to(top_from: Top, top_to: Top) -> CoordMap:
    """The map from ``top_from``'s coordinates to ``top_to``'s, through a common ancestor.

    Raises RuntimeError when no ancestor is reachable from both through spatial layers.
    """
    from_maps = dict(_walk(top_from))
    for current, to_map in _walk(top_to):
        if current in from_maps:
            return compose(to_map, inverse(from_maps[current]))
    raise RuntimeError("Could not compute map between tops; are they connected by spatial layers?")


def crop(top_from: Top, top_to: Top) -> Top:
    """An ``L.Crop`` of ``top_from`` to ``top_to``'s size, at the offset their coordinate map gives.

    AssertionError when the scales differ, or the offset is negative or fractional.
    """
    axis, a, b = coord_map_from_to(top_from, top_to)
    if not np.all(a == 1):
        raise AssertionError(f"scale mismatch on crop (a = {a})")
    if not np.all(b <= 0):
        raise AssertionError(f"cannot crop negative offset (b = {b})")
    if not np.all(np.round(b) == b):
        raise AssertionError(f"cannot crop noninteger offset (b = {b})")
    return L.Crop(top_from, top_to,
                  crop_param={"axis": axis + 1, "offset": [int(v) for v in np.asarray(-np.round(b))]})
