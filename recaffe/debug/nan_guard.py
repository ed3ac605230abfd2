"""The NaN/Inf guard: stop training at the first non-finite loss or update, and name the layer.

Checking every blob of every layer would cost a device sync per blob, so the guard checks only
what is already on the host or one reduction away: the iteration's loss (the solver has it as a
float for the smoothed loss) and the sum of the update values before ``net.update()``. Before each
iteration it keeps what re-running the iteration needs: the position of Caffe's random stream,
the tops each data layer produced (so the same batch is fed again; the data layers themselves do
not run twice), and, when the net has Python layers, their attributes and numpy's and torch's
global random states. The weights need no copy: a bad iteration is caught before its update.

When the loss or the update is not finite, the iteration is run again layer by layer from that
state, checking each layer's tops after its forward, and its bottom and parameter diffs after its
backward; the first layer (in execution order) that produces a non-finite value is reported with
the ranges of its inputs. A non-finite update of finite gradients is reported as the ``update``
phase of the first parameter (in net order) whose update is not finite. Before a snapshot the
weights are checked too, so no snapshot with non-finite weights is written.

The facts travel in a ``NonFiniteError`` (a ``FloatingPointError``): ``caffe train`` prints them
as its FATAL line; pycaffe raises it from ``solver.step()`` and ``net.forward()`` after
``caffe.set_nan_check(True)``. The check is on in ``caffe train`` (``-nan_check off`` turns it
off) and off in the Python API unless ``set_enabled(True)``.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from recaffe import rng

if TYPE_CHECKING:
    from recaffe.blob import Blob
    from recaffe.net import Net
    from recaffe.proto import caffe_pb2

FORWARD, BACKWARD, UPDATE = "forward", "backward", "update"

_state = {"enabled": False}


def set_enabled(enabled: bool) -> None:
    """Turn the guard on or off for every solver and pycaffe net of this process."""
    _state["enabled"] = bool(enabled)


def is_enabled() -> bool:
    return _state["enabled"]


@contextlib.contextmanager
def enabled_as(enabled: bool) -> Iterator[None]:
    """The guard on or off for the duration of a ``with`` block (how ``caffe train`` sets it)."""
    before = is_enabled()
    set_enabled(enabled)
    try:
        yield
    finally:
        set_enabled(before)


# ================================================================ the report
def value_range(values: torch.Tensor) -> str:
    """``[min, max]`` of the finite values, then how many are nan, +inf and -inf."""
    flat = values.detach().reshape(-1)
    finite = flat[torch.isfinite(flat)]
    text = "[no finite values]"
    if finite.numel():
        text = f"[{finite.min().item():.4g}, {finite.max().item():.4g}]"
    bad = [(int(torch.isnan(flat).sum()), "nan"), (int((flat == math.inf).sum()), "+inf"),
           (int((flat == -math.inf).sum()), "-inf")]
    counts = ", ".join(f"{n} {what}" for n, what in bad if n)
    return f"{text} ({counts} of {flat.numel()})" if counts else text


def count_bad(values: torch.Tensor) -> int:
    return int((~torch.isfinite(values)).sum())


@dataclass
class Finding:
    """Where a non-finite value first appeared: iteration (None outside a solver), phase
    (forward/backward/update), layer and blob, and the ranges of what the layer read."""

    iteration: int | None
    phase: str
    layer: str | None
    layer_type: str
    blob: str
    values: str
    inputs: list[tuple[str, str]] = field(default_factory=list)
    note: str = ""
    last_snapshot: str | None = None

    def message(self) -> str:
        where = f"iteration {self.iteration}, " if self.iteration is not None else ""
        what = (f"layer {self.layer!r} ({self.layer_type}) produced a non-finite {self.blob} {self.values}"
                if self.layer is not None else f"{self.blob} is not finite {self.values}")
        text = f"Non-finite value at {where}{self.phase} phase: {what}"
        if self.inputs:
            text += "; inputs: " + ", ".join(f"{name} {rng_}" for name, rng_ in self.inputs)
        if self.note:
            text += f"; {self.note}"
        if self.iteration is not None:
            text += (f"; last good snapshot: {self.last_snapshot}" if self.last_snapshot
                     else "; no snapshot was written before it")
            text += ". Training stopped (no snapshot with non-finite weights is written; -nan_check off "\
                    "runs on as Caffe does)"
        return text


class NonFiniteError(FloatingPointError):
    """A loss, blob or parameter stopped being finite; ``finding`` holds the facts."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message())
        self.finding = finding
        self.iteration, self.phase, self.layer = finding.iteration, finding.phase, finding.layer
        self.blob, self.inputs, self.last_snapshot = finding.blob, finding.inputs, finding.last_snapshot


# ================================================================ re-running one pass
Fed = tuple[int, list[torch.Tensor], rng.RngState]
"""A data layer's batch as one pass fed it: the layer's index, its tops, the stream before it ran."""


class Recorder:
    """Keeps what re-running the net's current pass needs, and re-runs it layer by layer.

    ``begin()`` before the pass (random states, Python layers' attributes); while armed, the tops
    of every layer without bottoms (the data layers) are copied after its forward, with the random
    stream's position after it. ``locate`` restores that state and re-runs forward (and backward),
    feeding the recorded tops, until a layer produces a non-finite value.
    """

    def __init__(self, net: Net) -> None:
        self._net = weakref.ref(net)  # the net's callback list holds the recorder, not the reverse
        self.sources = {i for i, bottom in enumerate(net.bottom_vecs) if not bottom}
        self.python_layers = [layer for layer in net.layers if hasattr(layer, "user")]
        self.armed = False
        self._start: dict[str, Any] = {}
        self._fed: list[Fed] = []
        self._spare: list[list[torch.Tensor]] = []  # the last pass's copies, reused when shapes fit
        net.after_forward.append(self._after_forward)

    @property
    def net(self) -> Net:
        net = self._net()
        if net is None:
            raise RuntimeError("the net of this NaN guard no longer exists")
        return net

    def begin(self) -> None:
        self.armed = True
        self._spare = [tops for _, tops, _ in reversed(self._fed)]
        self._fed.clear()
        self._start = {"caffe": rng.get_state()}
        if self.python_layers:  # user code may draw from the global generators or keep counters
            self._start.update(numpy=np.random.get_state(), torch=torch.get_rng_state(),
                               python=[dict(vars(layer.user)) for layer in self.python_layers])

    def _after_forward(self, layer_id: int) -> None:
        if self.armed and layer_id in self.sources:
            blobs = self.net.top_vecs[layer_id]
            tops = self._spare.pop() if self._spare else []
            if [t.shape for t in tops] != [b.data.shape for b in blobs]:
                tops = [torch.empty_like(b.data) for b in blobs]
            for copy, blob in zip(tops, blobs):
                copy.copy_(blob.data)
            self._fed.append((layer_id, tops, rng.get_state()))

    def _restore(self) -> None:
        rng.set_state(self._start["caffe"])
        if "python" in self._start:
            np.random.set_state(self._start["numpy"])
            torch.set_rng_state(self._start["torch"])
            for layer, attributes in zip(self.python_layers, self._start["python"]):
                vars(layer.user).clear()
                vars(layer.user).update(attributes)

    def locate(self, passes: int, backward: bool, start: int = 0, end: int | None = None) -> Finding | None:
        """Re-run ``passes`` forward (and backward) passes from the recorded state; the first
        non-finite value, or None when every value stayed finite."""
        net = self.net
        end = len(net.layers) - 1 if end is None else end
        self.armed = False
        self._restore()
        fed = iter(self._fed)
        if backward:
            net.clear_param_diffs()
        with torch.no_grad():
            for _ in range(passes):
                for i in range(start, end + 1):
                    found = self._forward_layer(i, fed)
                    if found is not None:
                        return found
                for i in range(end, start - 1, -1) if backward else ():
                    found = self._backward_layer(i) if net.layer_need_backward[i] else None
                    if found is not None:
                        return found
        return None

    def _forward_layer(self, i: int, fed: Iterator[Fed]) -> Finding | None:
        net = self.net
        layer, bottom, top = net.layers[i], net.bottom_vecs[i], net.top_vecs[i]
        inputs: list[tuple[str, str]] = []
        if i in self.sources:
            entry = next(fed, None)
            if entry is None or entry[0] != i:
                raise RuntimeError(f"the NaN guard holds no recorded batch of data layer {layer.name!r}")
            _, tops, rng_state = entry
            for blob, values in zip(top, tops):
                blob.reshape(values.shape)
                blob.data.copy_(values)
            rng.set_state(rng_state)
        else:
            inputs = self._blob_ranges(i, bottom, "data") + self._param_ranges(i, "data")
            for j, blob in enumerate(layer.blobs):
                if count_bad(blob.data):
                    return self._finding(i, FORWARD, f"weights {self._param_name(i, j)}", blob.data, inputs,
                                         "the weights were already non-finite before this pass")
            layer.run_forward(bottom, top)
        for blob_id, blob in zip(net.top_id_vecs[i], top):
            if count_bad(blob.data):
                return self._finding(i, FORWARD, f"top {net.blob_names[blob_id]!r} data", blob.data, inputs)
        return None

    def _backward_layer(self, i: int) -> Finding | None:
        net = self.net
        layer, bottom, top = net.layers[i], net.bottom_vecs[i], net.top_vecs[i]
        inputs = (self._blob_ranges(i, top, "diff", tops=True) + self._blob_ranges(i, bottom, "data")
                  + self._param_ranges(i, "data"))
        layer.run_backward(top, net.bottom_need_backward[i], bottom)
        for k, (blob_id, blob) in enumerate(zip(net.bottom_id_vecs[i], bottom)):
            if net.bottom_need_backward[i][k] and count_bad(blob.diff):
                name = net.blob_names[blob_id]
                return self._finding(i, BACKWARD, f"bottom {name!r} diff", blob.diff, inputs)
        for j, blob in enumerate(layer.blobs):
            propagates = j < len(layer.param_propagate_down) and layer.param_propagate_down[j]
            if propagates and count_bad(blob.diff):
                return self._finding(i, BACKWARD, f"gradient of {self._param_name(i, j)}", blob.diff, inputs)
        return None

    def _blob_ranges(self, i: int, blobs: list[Blob], part: str, tops: bool = False) -> list[tuple[str, str]]:
        net = self.net
        ids = net.top_id_vecs[i] if tops else net.bottom_id_vecs[i]
        kind = "top" if tops else "bottom"
        return [(f"{kind} {net.blob_names[b]!r} {part}", value_range(getattr(blob, part)))
                for b, blob in zip(ids, blobs) if blob.count()]

    def _param_ranges(self, i: int, part: str) -> list[tuple[str, str]]:
        return [(f"weights {self._param_name(i, j)}", value_range(getattr(blob, part)))
                for j, blob in enumerate(self.net.layers[i].blobs)]

    def _param_name(self, i: int, j: int) -> str:
        return f"{self.net.layer_names[i]}[{j}]"

    def _finding(self, i: int, phase: str, blob: str, values: torch.Tensor, inputs: list[tuple[str, str]],
                 note: str = "") -> Finding:
        layer = self.net.layers[i]
        return Finding(None, phase, layer.name, layer.type, blob, value_range(values), inputs, note)

    def checked_forward(self, start: int, end: int, keep: Iterable[str | int] = ()) -> float:
        """``net.forward(start, end, keep)``, then a check of the loss and of the outputs it wrote; on a
        non-finite value the pass is re-run to name the layer (``NonFiniteError``)."""
        net = self.net
        self.begin()
        loss = net.forward(start, end, keep)
        self.armed = False
        written = set(net.top_id_vecs[end]) | {
            b for i in range(start, end + 1) for b in net.top_id_vecs[i] if b in net.output_blob_indices}
        if math.isfinite(loss) and not any(count_bad(net.blob_list[b].data) for b in written):
            return loss
        found = self.locate(1, backward=False, start=start, end=end)
        raise NonFiniteError(found or Finding(
            None, FORWARD, None, "", "forward pass", f"(loss {loss:g})",
            note="re-running the pass from the same inputs gave finite values everywhere: "
                 "a layer is not deterministic (see caffe repro)"))


_forward_recorders: weakref.WeakKeyDictionary[Net, Recorder] = weakref.WeakKeyDictionary()


def checked_forward(net: Net, start: int, end: int, keep: Iterable[str | int] = ()) -> float:
    """``net.forward(start, end, keep)``, checked for non-finite values when the guard is on (pycaffe).
    In deploy mode ``keep`` names the blobs that stay readable besides the inputs and outputs."""
    if not is_enabled():
        return net.forward(start, end, keep)
    if net not in _forward_recorders:
        _forward_recorders[net] = Recorder(net)
    return _forward_recorders[net].checked_forward(start, end, keep)


# ================================================================ the solver's guard
class GuardedSolver(Protocol):
    """What the guard uses of a ``recaffe.Solver`` (a protocol, as the solver imports this module)."""

    history: list[Blob]
    before_update: list[Callable[[float], None]]
    before_snapshot: list[Callable[[], None]]
    last_snapshot: str | None

    @property
    def net(self) -> Net: ...
    @property
    def param(self) -> caffe_pb2.SolverParameter: ...
    @property
    def iter(self) -> int: ...
    @property
    def smoothed_loss(self) -> float: ...
    def local_rate(self, param_id: int, rate: float) -> float: ...
    def add_callback(self, on_start: Callable[[], None], on_gradients_ready: Callable[[], None]) -> None: ...


class SolverGuard:
    """Installs the checks on a solver: the loss after the gradients are ready, the update values
    before ``net.update()``, the weights before a snapshot; each raises ``NonFiniteError``."""

    def __init__(self, solver: GuardedSolver) -> None:
        self._solver = weakref.ref(solver)
        self.recorder = Recorder(solver.net)
        solver.add_callback(self._on_start, self._on_gradients_ready)
        solver.before_update.append(self._check_update)
        solver.before_snapshot.append(self._check_weights)

    @property
    def solver(self) -> GuardedSolver:
        solver = self._solver()
        if solver is None:
            raise RuntimeError("the solver of this NaN guard no longer exists")
        return solver

    def _on_start(self) -> None:
        if is_enabled():
            self.recorder.begin()
        else:
            self.recorder.armed = False

    def _on_gradients_ready(self) -> None:
        loss = self.solver.smoothed_loss
        if self.recorder.armed and not math.isfinite(loss):
            self._raise(self._replay(), f"(smoothed loss {loss:g})")

    def _check_update(self, rate: float) -> None:
        if not self.recorder.armed:
            return
        params = [p.blob for p in self.solver.net.learnable_params]
        if not params or math.isfinite(float(torch.stack([b.diff.sum() for b in params]).sum())):
            return  # (a float sum may overflow; the exact check below then finds nothing)
        bad = next((j for j, b in enumerate(params) if count_bad(b.diff)), None)
        if bad is None:
            return
        update, weights = value_range(params[bad].diff), value_range(params[bad].data)
        history = [value_range(h.data) for h in self.solver.history[bad::len(params)]]
        rate = self.solver.local_rate(bad, rate)
        found = self._replay()
        if found is None:
            i, j = self._owner(bad)
            net = self.solver.net
            inputs = [("weights", weights), ("gradient", value_range(params[bad].diff))]
            inputs += [("history", h) for h in history] + [("local rate", f"{rate:g}")]
            found = Finding(None, UPDATE, net.layer_names[i], net.layers[i].type,
                            f"update of {net.layer_names[i]}[{j}]", update, inputs)
        self._raise(found)

    def _check_weights(self) -> None:
        if not is_enabled():
            return
        net = self.solver.net
        for net_param_id, blob in enumerate(net.params):
            if count_bad(blob.data):
                i, j = net.param_layer_indices[net_param_id]
                found = Finding(None, UPDATE, net.layer_names[i], net.layers[i].type,
                                f"weights {net.layer_names[i]}[{j}]", value_range(blob.data),
                                note=f"the snapshot at iteration {self.solver.iter} was not written")
                found.iteration = self.solver.iter - 1
                self._raise(found)

    def _replay(self) -> Finding | None:
        return self.recorder.locate(self.solver.param.iter_size, backward=True)

    def _owner(self, learnable_id: int) -> tuple[int, int]:
        net = self.solver.net
        net_param_id = next(k for k, (owner, lid) in enumerate(zip(net.param_owners, net.learnable_param_ids))
                            if owner == -1 and lid == learnable_id)
        return net.param_layer_indices[net_param_id]

    def _raise(self, found: Finding | None, what: str = "") -> None:
        solver = self.solver
        if found is None:
            found = Finding(None, FORWARD, None, "", "loss", what, note=(
                "re-running the iteration from the same state gave finite values everywhere: a layer "
                "is not deterministic (see caffe repro)"))
        if found.iteration is None:
            found.iteration = solver.iter
        found.last_snapshot = solver.last_snapshot
        raise NonFiniteError(found)
