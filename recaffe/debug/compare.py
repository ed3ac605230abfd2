"""Compare the weights and solver states of two runs, blob by blob (``caffe compare A B``).

A side is one file (a ``.caffemodel``/``.caffemodel.h5`` or a ``.solverstate``/``.solverstate.h5``)
or a run's snapshots: a prefix (``snapshots/lenet`` for ``snapshots/lenet_iter_N.*``) or a folder
that holds one prefix's snapshots. Snapshots are paired by iteration. A solver state brings its
history blobs and, when its ``learned_net`` file is found, that file's weights.

Per blob the report gives the largest absolute and relative difference and how many elements
differ (beyond ``atol + rtol·|b|``; NaN equals NaN) at the last common snapshot, and the first
snapshot iteration at which the blob differs; blobs are sorted by that iteration, then in net
order (``-model``, else the order of A's file): the layer that diverged first comes first.
"""

from __future__ import annotations

import dataclasses
import glob
import math
import os
import re
from collections.abc import Iterable, Sequence

import numpy as np

from recaffe import errors
from recaffe.io import blobproto, h5, legacy, prototxt, snapshot, weights
from recaffe.proto import caffe_pb2

Named = list[tuple[str, np.ndarray]]
_SNAPSHOT = re.compile(r"^(?P<prefix>.*)_iter_(?P<iter>\d+)\.(?P<kind>caffemodel|solverstate)(?:\.h5)?$")


class CompareError(ValueError):
    """A side names no readable weights, solver state or snapshots."""


# ================================================================ reading a side
def read_weights(path: str) -> Named:
    """``("layer[j]", values)`` for every parameter blob of a caffemodel (binary or HDF5), in file order."""
    if weights.is_hdf5(path):
        kind = "HDF5 weights file"
        with h5.open_read(path, kind) as f, errors.read_guard(path, kind):
            if "data" not in f:
                raise CompareError(f"{path!r} has no /data group: not a Caffe HDF5 weights file")
            return [(f"{name}[{j}]", h5.read_array(group[j], path, kind).astype(np.float64))
                    for name, group in f["data"].items() for j in sorted(group, key=int)]
    param = prototxt.read_binary(path, caffe_pb2.NetParameter())
    return [(f"{name}[{j}]", blobproto.array_from_proto(blob).astype(np.float64))
            for name, blobs in legacy.trained_layers(param, path) for j, blob in enumerate(blobs)]


def learnable_names(path: str) -> list[str]:
    """The learnable-parameter order of a binary caffemodel (a solver state's history order): every
    layer's blobs in net order, a blob shared by name (``param { name }``) only where it first appears."""
    if weights.is_hdf5(path):
        return []
    seen: set[str] = set()
    names = []
    for layer in prototxt.read_binary(path, caffe_pb2.NetParameter()).layer:
        for j in range(len(layer.blobs)):
            shared = layer.param[j].name if j < len(layer.param) else ""
            if shared and shared in seen:
                continue
            seen.add(shared)
            names.append(f"{layer.name}[{j}]")
    return names


def read_state(path: str) -> tuple[Named, str | None]:
    """A solver state's ``iter``/``current_step`` and history blobs (named after their params when
    the weights it names are found), and the path of those weights."""
    state = snapshot.load(path)
    model = _learned_net(state.learned_net, path)
    params = learnable_names(model) if model else []
    if not params or len(state.history) % len(params):
        params = []  # the weights do not fit the history: leave the history blobs unnamed
    named: Named = [("solver iter", np.array([state.iter], dtype=np.float64)),
                    ("solver current_step", np.array([state.current_step], dtype=np.float64))]
    for i, values in enumerate(state.history):
        owner = f" ({params[i % len(params)]})" if params else ""
        named.append((f"history[{i}]{owner}", np.asarray(values, dtype=np.float64)))
    return named, model


def _learned_net(learned_net: str | None, state_file: str) -> str | None:
    if not learned_net:
        return None
    for candidate in (learned_net, os.path.join(os.path.dirname(state_file), os.path.basename(learned_net))):
        if os.path.isfile(candidate):
            return candidate
    return None


def read_file(path: str) -> Named:
    """Weights, or a solver state's fields and history followed by the weights it names."""
    if ".solverstate" in os.path.basename(path):
        named, model = read_state(path)
        return (read_weights(model) if model else []) + named
    return read_weights(path)


def snapshots(side: str) -> dict[int | None, Named]:
    """A side's blobs per iteration: one file (key None), or a run's snapshots by iteration."""
    if os.path.isfile(side):
        match = _SNAPSHOT.match(side)
        return {int(match["iter"]) if match else None: read_file(side)}
    pattern = os.path.join(side, "*_iter_*") if os.path.isdir(side) else glob.escape(side) + "_iter_*"
    found: dict[str, dict[int, dict[str, str]]] = {}
    for path in sorted(glob.glob(pattern)):
        match = _SNAPSHOT.match(path)
        if match:
            kinds = found.setdefault(match["prefix"], {}).setdefault(int(match["iter"]), {})
            kinds[match["kind"]] = path
    if not found:
        raise CompareError(f"{side!r} is not a caffemodel or solverstate file, and no snapshots "
                           f"<prefix>_iter_<N>.caffemodel/.solverstate match it")
    if len(found) > 1:
        raise CompareError(f"{side!r} holds the snapshots of several runs ({', '.join(sorted(found))}); "
                           f"give one of these prefixes")
    (runs,) = found.values()
    result: dict[int | None, Named] = {}
    for iteration, kinds in sorted(runs.items()):
        if "solverstate" in kinds:
            named, model = read_state(kinds["solverstate"])
            model = model or kinds.get("caffemodel")
            result[iteration] = (read_weights(model) if model else []) + named
        else:
            result[iteration] = read_weights(kinds["caffemodel"])
    return result


def net_order(model: str) -> dict[str, int]:
    """Layer name -> position in a net prototxt (``-model``)."""
    param = prototxt.read_net_param(model)
    return {layer.name: i for i, layer in reversed(list(enumerate(param.layer)))}


# ================================================================ comparing
@dataclasses.dataclass
class BlobDiff:
    """How one blob differs between the sides (in a Comparison: at the last common snapshot, and
    ``iteration`` is the first one where it differs)."""

    name: str
    iteration: int | None
    max_abs: float
    max_rel: float
    differing: int
    count: int
    note: str = ""

    @property
    def differs(self) -> bool:
        return bool(self.differing or self.note)


def diff_arrays(name: str, a: np.ndarray, b: np.ndarray, rtol: float, atol: float,
                iteration: int | None = None) -> BlobDiff:
    """Max |a−b|, max |a−b|/max(|a|,|b|), and the count of elements with |a−b| > atol + rtol·|b|."""
    if a.shape != b.shape and a.size != b.size:
        return BlobDiff(name, iteration, math.nan, math.nan, max(a.size, b.size), max(a.size, b.size),
                        f"shape {tuple(a.shape)} vs {tuple(b.shape)}")
    a, b = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    both_nan = np.isnan(a) & np.isnan(b)
    with np.errstate(invalid="ignore", over="ignore"):
        delta = np.where(both_nan | (a == b), 0.0, np.abs(a - b))
        delta = np.where(np.isnan(delta), np.inf, delta)
        scale = np.maximum(np.abs(a), np.abs(b))
        rel = np.divide(delta, scale, out=np.zeros_like(delta), where=scale > 0)
        differing = int((delta > atol + rtol * np.abs(b)).sum()) if (rtol or atol) else int((delta > 0).sum())
    return BlobDiff(name, iteration, float(delta.max(initial=0.0)), float(rel.max(initial=0.0)),
                    differing, a.size)


def compare_named(a: Named, b: Named, rtol: float, atol: float,
                  iteration: int | None = None) -> list[BlobDiff]:
    """One BlobDiff per name in ``a`` (then names only in ``b``), in ``a``'s order."""
    other = dict(b)
    diffs = [diff_arrays(name, values, other.pop(name), rtol, atol, iteration) if name in other
             else _missing(name, values, iteration, "only in A") for name, values in a]
    return diffs + [_missing(name, values, iteration, "only in B") for name, values in other.items()]


def _missing(name: str, values: np.ndarray, iteration: int | None, note: str) -> BlobDiff:
    return BlobDiff(name, iteration, math.nan, math.nan, values.size, values.size, note)


@dataclasses.dataclass
class Comparison:
    """The per-blob result over all common iterations, sorted by first divergence then net order."""

    rows: list[BlobDiff]
    iterations: list[int | None]
    only_a: list[int | None]
    only_b: list[int | None]
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not any(row.differs for row in self.rows)

    @property
    def first(self) -> BlobDiff | None:
        return next((row for row in self.rows if row.differs), None)


def compare(side_a: str, side_b: str, rtol: float = 0.0, atol: float = 0.0,
            model: str | None = None) -> Comparison:
    """Compare two sides (files, snapshot prefixes or folders), pairing snapshots by iteration."""
    runs_a, runs_b = snapshots(side_a), snapshots(side_b)
    if len(runs_a) == 1 and len(runs_b) == 1:  # two files: compared whatever their iterations
        (key_a, a), (key_b, b) = runs_a.popitem(), runs_b.popitem()
        pairs = [(key_a if key_a == key_b else None, a, b)]
    else:
        pairs = [(k, runs_a[k], runs_b[k]) for k in runs_a if k in runs_b]
        if not pairs:
            raise CompareError(
                f"{side_a!r} and {side_b!r} have no snapshot iteration in common "
                f"({describe_iterations(list(runs_a))} vs {describe_iterations(list(runs_b))})")
    last: dict[str, BlobDiff] = {}
    first: dict[str, int | None] = {}
    order: dict[str, int] = {}
    notes: list[str] = []
    for iteration, a, b in pairs:
        if _has_state(a) != _has_state(b):  # a solver state on one side only: compare the weights
            side = "A" if _has_state(a) else "B"
            note = f"only {side} has solver states: their history and fields are not compared"
            notes += [note] if note not in notes else []
            a, b = [x for x in a if not _is_state(x[0])], [x for x in b if not _is_state(x[0])]
        for row in compare_named(a, b, rtol, atol, iteration):
            order.setdefault(row.name, len(order))
            if row.differs and row.name not in first:
                first[row.name] = iteration
            last[row.name] = row
    for name, row in last.items():
        row.iteration = first.get(name)
    layer_order = net_order(model) if model else {}

    def key(row: BlobDiff) -> tuple[int, float, int]:
        iteration = row.iteration if row.differs and row.iteration is not None else -1
        layer = _layer_of(row.name)
        position = layer_order.get(layer, len(layer_order)) if layer_order else order[row.name]
        return (0 if row.differs else 1, iteration, position)

    rows = sorted(last.values(), key=key)
    common = [k for k, _, _ in pairs]
    only_a, only_b = [k for k in runs_a if k not in runs_b], [k for k in runs_b if k not in runs_a]
    return Comparison(rows, common, only_a, only_b, notes)


def _is_state(name: str) -> bool:
    return name.startswith(("history[", "solver "))


def _has_state(named: Named) -> bool:
    return any(_is_state(name) for name, _ in named)


def _layer_of(name: str) -> str:
    owner = re.search(r"\((.*)\[\d+\]\)$", name)  # history[i] (layer[j])
    if owner:
        return owner.group(1)
    return name.rsplit("[", 1)[0]


# ================================================================ the report
def format_table(rows: Iterable[BlobDiff], limit: int | None = None) -> list[str]:
    rows = list(rows)
    width = max([len(r.name) for r in rows] + [4])
    lines = [f"{'blob':<{width}}  {'first iter':>10}  {'max |a-b|':>11}  {'max rel':>11}  differing"]
    for row in rows[:limit]:
        iteration = "-" if row.iteration is None or not row.differs else str(row.iteration)
        if row.note:
            lines.append(f"{row.name:<{width}}  {iteration:>10}  {row.note}")
        else:
            lines.append(f"{row.name:<{width}}  {iteration:>10}  {row.max_abs:>11.4g}  {row.max_rel:>11.4g}  "
                         f"{row.differing}/{row.count}")
    if limit is not None and len(rows) > limit:
        lines.append(f"... and {len(rows) - limit} more")
    return lines


def summary(result: Comparison, tolerance: bool) -> str:
    first = result.first
    if first is None:
        return "identical" if not tolerance else "equal within the tolerance"
    where = f" at iteration {first.iteration}" if first.iteration is not None else ""
    count = sum(row.differs for row in result.rows)
    return f"differ: {count} of {len(result.rows)} blobs; first divergence{where} in {first.name}"


def describe_iterations(keys: Sequence[int | None]) -> str:
    return ", ".join(str(k) for k in keys if k is not None) or "-"
