"""Is training reproducible, and where does it stop being so (``caffe repro``)?

A *setting* is a pair of ways to run the same solver (``SETTINGS``, a registry: a new pair is one
``register_setting`` call). The two runs are built side by side in one process and stepped in
lockstep, one iteration each in turn; every value an iteration writes is recorded in execution
order: the tops after each layer's forward, the bottom and parameter diffs after each layer's
backward, and the weights after the update (and, before iteration 0, the initial weights). The
first record that differs (bit for bit, or beyond ``rtol``/``atol``) names the iteration, phase,
layer and blob, with the largest difference.

Each run keeps its own position in Caffe's random stream (it is swapped in while the run steps),
so a solver with a ``random_seed`` gives both runs the same numbers. Randomness outside it, such
as numpy's global generator in a Python layer, is shared as it would be by two runs in one
process, so such a layer shows up as the first difference.

``against`` compares one run with another program's: a run's snapshots (weights and history at
each snapshot iteration) or a glog log of BVLC Caffe (the display and test outputs per iteration).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import torch

from recaffe import logs, rng
from recaffe.cli import parse_log
from recaffe.debug import compare, manual_sgd
from recaffe.io import prototxt
from recaffe.net import Net
from recaffe.proto import caffe_pb2
from recaffe.registry import Registry
from recaffe.solver import Solver, load_solver

log = logging.getLogger(__name__)
M = TypeVar("M", caffe_pb2.SolverParameter, caffe_pb2.NetParameter)


# ================================================================ one run
@dataclass(frozen=True)
class Variant:
    """How one side of a setting runs: its device, torch's thread count while it steps (None:
    the process's), ``loop``: "step" (``Solver.step(1)``) or "manual" (the loop of
    docs/manual_sgd_loop.md, ``recaffe.debug.manual_sgd``), and ``inference``: "" (none), "plain"
    or "deploy": after each iteration, the solver's first test net, in that mode and with the
    iteration's weights, runs forward on its next batch and its outputs are recorded too."""

    label: str
    device: str = "cpu"
    threads: int | None = None
    loop: str = "step"
    inference: str = ""


@dataclass
class Record:
    phase: str
    layer: str
    layer_type: str
    blob: str
    values: torch.Tensor


class Run:
    """A solver stepped one iteration at a time, recording what each iteration writes."""

    def __init__(self, param: caffe_pb2.SolverParameter, variant: Variant,
                 tested: caffe_pb2.SolverParameter | None = None) -> None:
        """``tested``: the solver as given, test nets included (``param`` has them removed)."""
        self.variant = variant
        with self._threads():
            self.solver: Solver = load_solver(param, device=variant.device)
        self.rng_state = rng.get_state()
        self.inference = None if not variant.inference else Net(
            first_test_net(tested or param), device=variant.device, optimize=variant.inference == "deploy")
        self.history = [torch.zeros_like(p.blob.data) for p in self.net.learnable_params]
        self.records: list[Record] = []
        self.done = 0  # iterations run
        self.net.after_forward.append(self._after_forward)
        self.net.after_backward.append(self._after_backward)

    @property
    def net(self) -> Net:
        return self.solver.net

    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        before = torch.get_num_threads()
        if self.variant.threads is not None:
            torch.set_num_threads(self.variant.threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def initial(self) -> list[Record]:
        return self._weights("setup")

    def iteration(self) -> list[Record]:
        """Run one iteration; the records it made, in execution order."""
        self.records = []
        rng.set_state(self.rng_state)
        with self._threads():
            if self.variant.loop == "manual":
                manual_sgd.manual_sgd_step(self.net, self.solver.param, self.history, self.done)
            else:
                self.solver.step(1)
        self.done += 1
        self.rng_state = rng.get_state()
        return self.records + self._weights("update") + self._infer()

    def _infer(self) -> list[Record]:
        """The test net's outputs on its next batch, with this iteration's weights."""
        net = self.inference
        if net is None:
            return []
        net.copy_trained_layers_from(self.net.to_proto())
        with self._threads():
            net.forward()
        producer = {b: i for i, tops in enumerate(net.top_id_vecs) for b in tops}
        return [Record("inference", net.layer_names[producer[b]], net.layers[producer[b]].type,
                       f"test net output {net.blob_names[b]!r}",
                       net.blob_list[b].data.detach().to("cpu", copy=True))
                for b in net.output_blob_indices]

    def _after_forward(self, i: int) -> None:
        net = self.net
        for blob_id, blob in zip(net.top_id_vecs[i], net.top_vecs[i]):
            self._record(i, "forward", f"top {net.blob_names[blob_id]!r} data", blob.data)

    def _after_backward(self, i: int) -> None:
        net = self.net
        if not net.layer_need_backward[i]:
            return
        for k, (blob_id, blob) in enumerate(zip(net.bottom_id_vecs[i], net.bottom_vecs[i])):
            if net.bottom_need_backward[i][k]:
                self._record(i, "backward", f"bottom {net.blob_names[blob_id]!r} diff", blob.diff)
        for j, blob in enumerate(net.layers[i].blobs):
            self._record(i, "backward", f"gradient of {net.layer_names[i]}[{j}]", blob.diff)

    def _record(self, i: int, phase: str, blob: str, values: torch.Tensor) -> None:
        layer = self.net.layers[i]
        self.records.append(Record(phase, layer.name, layer.type, blob, values.detach().to("cpu", copy=True)))

    def _weights(self, phase: str) -> list[Record]:
        net = self.net
        return [Record(phase, net.layer_names[i], net.layers[i].type, f"weights {net.layer_names[i]}[{j}]",
                       net.layers[i].blobs[j].data.detach().to("cpu", copy=True))
                for i, j in net.param_layer_indices]

    def named_state(self) -> compare.Named:
        """The weights (``layer[j]``) and the history blobs, named as ``caffe compare`` names them."""
        net = self.net
        named = [(f"{net.layer_names[i]}[{j}]", net.layers[i].blobs[j].data.detach().cpu().double().numpy())
                 for i, j in net.param_layer_indices]
        owners = [net.param_layer_indices[k] for k, owner in enumerate(net.param_owners) if owner == -1]
        for n, blob in enumerate(self.solver.history):
            i, j = owners[n % len(owners)]
            values = blob.data.detach().cpu().double().numpy()
            named.append((f"history[{n}] ({net.layer_names[i]}[{j}])", values))
        return named


# ================================================================ settings
@dataclass(frozen=True)
class Setting:
    """A named pair of variants; ``unavailable(param)`` says why it cannot run here ("" if it can)."""

    name: str
    description: str
    variants: tuple[Variant, Variant]
    unavailable: Callable[[caffe_pb2.SolverParameter], str] = lambda param: ""


SETTINGS: Registry[Setting] = Registry("repro setting")


def register_setting(setting: Setting) -> Setting:
    return SETTINGS.register(setting.name)(setting)


register_setting(Setting("run-twice", "the same solver twice", (Variant("run 1"), Variant("run 2"))))
register_setting(Setting("threads", "torch with 1 thread vs the default thread count",
                         (Variant("1 thread", threads=1), Variant("default threads"))))
register_setting(Setting(
    "manual", "solver.step() vs the manual SGD loop of docs/manual_sgd_loop.md",
    (Variant("solver.step"), Variant("manual loop", loop="manual")),
    lambda param: "" if param.type == "SGD" else f"the documented manual loop is SGD's, not {param.type}'s"))
register_setting(Setting(
    "deploy", "the first test net in plain mode vs deploy mode (Net(..., optimize=True): folded "
    "BatchNorm/Scale, fused ReLU), with each iteration's weights",
    (Variant("plain", inference="plain"), Variant("deploy", inference="deploy")),
    lambda param: "" if has_test_net(param) else NO_TEST_NET))
register_setting(Setting(
    "cuda", "CPU vs CUDA", (Variant("CPU"), Variant("CUDA", device="cuda")),
    lambda param: "" if torch.cuda.is_available() else "PyTorch sees no CUDA device"))


NO_TEST_NET = "the solver has no test net (test_iter with net or test_net)"


def has_test_net(param: caffe_pb2.SolverParameter) -> bool:
    generic = param.HasField("net_param") or param.HasField("net")
    return bool(param.test_iter) and bool(param.test_net_param or param.test_net or generic)


def first_test_net(param: caffe_pb2.SolverParameter) -> caffe_pb2.NetParameter:
    """The solver's first test net, in the TEST phase with its test_state, as the solver builds it."""
    if not has_test_net(param):
        raise ValueError(NO_TEST_NET)
    if param.test_net_param:
        net = _copy(param.test_net_param[0])
    elif param.test_net:
        net = prototxt.read_net_param(param.test_net[0])
    elif param.HasField("net_param"):
        net = _copy(param.net_param)
    else:
        net = prototxt.read_net_param(param.net)
    state = caffe_pb2.NetState(phase=caffe_pb2.TEST)
    state.MergeFrom(net.state)
    if param.test_state:
        state.MergeFrom(param.test_state[0])
    net.state.CopyFrom(state)
    return net


def training_only(param: caffe_pb2.SolverParameter) -> caffe_pb2.SolverParameter:
    """The solver without test nets, snapshots or display: what repro compares is the training."""
    param = _copy(param)
    for name in ("test_iter", "test_net", "test_net_param", "test_state"):
        param.ClearField(name)
    param.test_interval = 0
    param.snapshot = 0
    param.snapshot_after_train = False
    param.display = 0
    return param


def _copy(message: M) -> M:
    copy = type(message)()
    copy.CopyFrom(message)
    return copy


@contextlib.contextmanager
def _isolated() -> Iterator[None]:
    """Caffe's random stream is put back afterwards, and only warnings are logged meanwhile (the
    nets' setup lines would bury the report)."""
    logger = logging.getLogger("recaffe")
    previous = logger.level
    logger.setLevel(max(logging.WARNING, logger.getEffectiveLevel()))
    saved = rng.get_state()
    try:
        yield
    finally:
        logger.setLevel(previous)
        rng.set_state(saved)


# ================================================================ comparing two runs
@dataclass
class Difference:
    iteration: int
    record: Record
    max_abs: float
    differing: int
    count: int
    labels: tuple[str, str]

    def message(self) -> str:
        r = self.record
        when = "the initial weights" if r.phase == "setup" else f"iteration {self.iteration}, {r.phase} phase"
        return (f"differ at {when}: layer {r.layer!r} ({r.layer_type}), {r.blob}: "
                f"max |a-b| = {self.max_abs:.6g}, {self.differing} of {self.count} elements differ "
                f"({self.labels[0]} vs {self.labels[1]})")


def differing(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> tuple[int, float]:
    """(count of differing elements, max |a−b|): bit for bit when rtol = atol = 0 (NaN equals NaN)."""
    if a.shape != b.shape:
        return max(a.numel(), b.numel()), math.inf
    same = (a == b) | (torch.isnan(a) & torch.isnan(b))
    delta = (a.double() - b.double()).abs()
    if rtol or atol:
        same |= delta <= atol + rtol * b.double().abs()
    bad = ~same
    return int(bad.sum()), float(delta[bad].max()) if bool(bad.any()) else 0.0


def first_difference(a: list[Record], b: list[Record], rtol: float,
                     atol: float) -> tuple[Record, int, float] | None:
    for ra, rb in zip(a, b):
        if (ra.layer, ra.blob) != (rb.layer, rb.blob):
            return ra, ra.values.numel(), math.nan  # the runs did different work (should not happen)
        count, max_abs = differing(ra.values, rb.values, rtol, atol)
        if count:
            return ra, count, max_abs
    return None


@dataclass
class Outcome:
    setting: str
    iterations: int
    difference: Difference | None = None
    skipped: str = ""
    notes: list[str] = field(default_factory=list)

    def message(self) -> str:
        if self.skipped:
            return f"{self.setting}: skipped ({self.skipped})"
        if self.difference is None:
            return f"{self.setting}: bit-identical over {self.iterations} iterations"
        return f"{self.setting}: {self.difference.message()}"


def run_setting(param: caffe_pb2.SolverParameter, setting: Setting, iterations: int,
                rtol: float = 0.0, atol: float = 0.0) -> Outcome:
    """Step the setting's two runs in lockstep for ``iterations``; the first difference."""
    reason = setting.unavailable(param)
    if reason:
        return Outcome(setting.name, 0, skipped=reason)
    tested, param = param, training_only(param)
    outcome = Outcome(setting.name, iterations)
    if param.random_seed < 0:
        outcome.notes.append("the solver sets no random_seed: its weights and dropout masks differ per run")
    threads = {v.threads or torch.get_num_threads() for v in setting.variants}
    if any(v.threads for v in setting.variants) and len(threads) == 1:
        outcome.notes.append(f"both runs use {threads.pop()} thread(s): torch's default is 1 here")
    labels = (setting.variants[0].label, setting.variants[1].label)
    with _isolated():
        runs = (Run(param, setting.variants[0], tested), Run(param, setting.variants[1], tested))
        found = first_difference(runs[0].initial(), runs[1].initial(), rtol, atol)
        it = -1
        while found is None and it + 1 < iterations:
            it += 1
            found = first_difference(runs[0].iteration(), runs[1].iteration(), rtol, atol)
    if found is not None:
        record, count, max_abs = found
        outcome.difference = Difference(it, record, max_abs, count, record.values.numel(), labels)
        outcome.iterations = it + 1
    return outcome


# ================================================================ against another program's run
def against_snapshots(param: caffe_pb2.SolverParameter, source: str, iterations: int,
                      rtol: float = 0.0, atol: float = 0.0) -> tuple[bool, str]:
    """Train ``iterations`` and compare the weights and history with ``source``'s snapshot at
    each iteration it has; (same, report)."""
    theirs = compare.snapshots(source)
    wanted = sorted(k for k in theirs if k is not None and 0 < k <= iterations)
    if not wanted:
        raise compare.CompareError(f"{source!r} has no snapshot between iterations 1 and {iterations}")
    with _isolated():
        run = Run(training_only(param), Variant("recaffe"))
        for it in range(1, wanted[-1] + 1):
            run.iteration()
            if it not in theirs:
                continue
            ours = run.named_state()
            names = {name for name, _ in theirs[it]}
            rows = compare.compare_named([(n, v) for n, v in ours if n in names], theirs[it], rtol, atol, it)
            bad = [row for row in rows if row.differs and not row.note.startswith("only in B")]
            if bad:
                first = bad[0]
                return False, (f"differs from {source} at iteration {it}: {first.name} max |a-b| = "
                               f"{first.max_abs:.6g}, {first.differing} of {first.count} elements "
                               f"({len(bad)} blobs differ)")
    return True, f"matches {source} at iterations {compare.describe_iterations(wanted)}"


@contextlib.contextmanager
def _solver_log() -> Iterator[list[str]]:
    """The solver's log lines in glog's format while the block runs."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect(logging.INFO)
    handler.setFormatter(logs.GlogFormatter())
    with logs.listening("recaffe.solver", handler):
        yield lines


def against_log(param: caffe_pb2.SolverParameter, log_file: str, iterations: int,
                rtol: float = 1e-4, atol: float = 0.0) -> tuple[bool, str]:
    """Train ``iterations`` and compare every display and test output with the glog log of
    another run (BVLC Caffe's); (same, report naming the first iteration beyond the tolerance)."""
    their_train, their_test = parse_log.parse_log(log_file)
    param = _copy(param)
    param.max_iter = iterations
    param.snapshot = 0
    param.snapshot_after_train = False
    with _isolated(), _solver_log() as lines:
        load_solver(param).solve()
    our_train, our_test = parse_log.parse_lines(lines, datetime.date.today().year)
    checked = 0
    mismatches: list[tuple[float, str]] = []
    for kind, theirs, ours in (("train", their_train, our_train), ("test", their_test, our_test)):
        by_iter = {row["NumIters"]: row for row in ours}
        for row in theirs:
            mine = by_iter.get(row["NumIters"])
            if mine is None:
                continue
            checked += 1
            for name, value in row.items():
                if name in ("NumIters", "Seconds") or name not in mine:
                    continue
                close = math.isclose(mine[name], value, rel_tol=rtol, abs_tol=atol) or (
                    math.isnan(mine[name]) and math.isnan(value))
                if not close:
                    what = f"{kind} {name} = {mine[name]:g} here, {value:g} in the log"
                    mismatches.append((row["NumIters"], what))
                    break
    if not checked:
        return False, f"{log_file} has no display or test output at iterations 0..{iterations}"
    if mismatches:
        iteration, what = min(mismatches, key=lambda m: m[0])
        return False, (f"differs from {log_file} at iteration {iteration:g}: {what} "
                       f"(rtol {rtol:g}, atol {atol:g})")
    return True, f"matches {log_file}: {checked} display/test rows within rtol {rtol:g}, atol {atol:g}"
