"""Solver: Caffe's training loop (``Solver::Step``/``Solve``) and the SGD-family update template.

One iteration of ``step`` does, in Caffe's order: clear the param diffs; test at
``test_interval``; ``on_start`` callbacks; ``iter_size`` forward/backward passes (the diffs
accumulate; the loss is averaged); the smoothed loss over ``average_loss`` iterations; display;
``on_gradients_ready`` callbacks; ``apply_update``; snapshot at ``snapshot`` intervals or on
request; stop on request.

``apply_update`` is the template every registered solver shares: the rate of the current
``lr_policy`` → global L2 gradient clipping (on the raw accumulated diffs) → per learnable param:
normalize (1/iter_size), regularize (L2 or L1 weight decay × decay_mult), and the solver's own
``compute_update_value`` (the one method a solver overrides) → ``net.update()`` (w -= diff) →
``iter += 1``.

Scalars (rates, decays, losses) are computed as C++ ``float`` arithmetic, one rounding per
operation, so the numbers are Caffe's; the tensors hold the net's dtype.
"""

from __future__ import annotations

import abc
import logging
import math
import os
import time
from collections.abc import Callable
from typing import ClassVar

import torch

from recaffe import distributed, errors, fillers, net_builder, resume, rng, test_outputs
from recaffe.blob import Blob
from recaffe.debug import nan_guard
from recaffe.io import prototxt, snapshot, upgrade
from recaffe.math.floats import f32
from recaffe.net import TEST, TRAIN, Net
from recaffe.proto import caffe_pb2
from recaffe.registry import LR_POLICIES, SOLVERS

log = logging.getLogger("recaffe.solver")

SolverSource = caffe_pb2.SolverParameter | str | os.PathLike[str]

# What an action function (``set_action_function``) may return, as Caffe's SolverAction.
NONE, STOP, SNAPSHOT = "none", "stop", "snapshot"
ACTIONS = (NONE, STOP, SNAPSHOT)


class SolverError(errors.RecaffeError, ValueError):
    """A SolverParameter is invalid or a solver file does not fit the net; names the field."""


def load_solver(
    source: SolverSource, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> Solver:
    """The registered solver named by the parameter's ``type`` (pycaffe's ``get_solver``)."""
    param = _load_param(source)
    return SOLVERS.get(param.type)(param, dtype=dtype, device=device)


def _load_param(source: SolverSource) -> caffe_pb2.SolverParameter:
    if isinstance(source, caffe_pb2.SolverParameter):
        param = caffe_pb2.SolverParameter()
        param.CopyFrom(source)
        return upgrade.upgrade_solver(param)
    return prototxt.read_solver_param(source)


class Solver(abc.ABC):
    """Caffe's Solver with SGDSolver's update template; subclasses supply ``compute_update_value``.

    ``Solver(source)`` takes a SolverParameter or a solver prototxt path. ``random_seed >= 0``
    seeds Caffe's random stream before the train net is built, then the test nets are built
    (one per ``test_iter``) and the ``weights`` files are copied into each net.

    ``history`` holds ``history_blobs_per_param`` blobs per learnable param (all of the first
    kind, then all of the second), the layout of Caffe's solverstate.
    """

    type: ClassVar[str] = ""
    history_blobs_per_param: ClassVar[int] = 1

    def __init__(
        self,
        source: SolverSource,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        param = _load_param(source)
        log.info("Initializing solver from parameters: \n%s", prototxt.to_text(param))
        self._param = param
        self._dtype, self._device = dtype, device
        check_solver_param(param)
        self._iter = 0
        self._current_step = 0
        self._check_snapshot_write_permissions()
        if param.random_seed >= 0:  # each rank its own stream (rank 0's weights are broadcast)
            rng.set_random_seed(param.random_seed + distributed.solver_rank())
        self._net = self._init_train_net()
        self._test_nets = self._init_test_nets()
        log.info("Solver scaffolding done.")
        self._callbacks: list[tuple[Callable[[], None], Callable[[], None]]] = []
        self._action_function: Callable[[], str] | None = None
        self._requested_early_exit = False
        self._losses: list[float] = []
        self._smoothed_loss = 0.0
        self._iterations_last = 0
        self._timer = time.perf_counter()
        self.history = [
            Blob(p.blob.shape, dtype=p.blob.dtype, device=p.blob.device)
            for _ in range(self.history_blobs_per_param)
            for p in self._net.learnable_params
        ]
        # hooks: before net.update() (given the rate; the diffs hold the update values), before a snapshot
        self.before_update: list[Callable[[float], None]] = []
        self.before_snapshot: list[Callable[[], None]] = []
        self.last_snapshot: str | None = None  # the solverstate last written or restored
        nan_guard.SolverGuard(self)
        self.check_param()

    def check_param(self) -> None:  # noqa: B027  (optional hook, empty by design)
        """A solver's own CHECKs on its fields (AdaGrad: momentum == 0, ...); run at construction."""

    # ================================================================ nets
    def _init_train_net(self) -> Net:
        p = self._param
        fields = ("net", "net_param", "train_net", "train_net_param")
        given = [name for name in fields if p.HasField(name)]  # type: ignore[arg-type]
        if len(given) != 1:
            raise SolverError(
                f"SolverParameter must specify exactly one train net using one of the fields "
                f"{', '.join(fields)}; got {len(given)}" + (f" ({', '.join(given)})" if given else "")
            )
        source = given[0]
        if source.endswith("_param"):
            log.info("Creating training net specified in %s.", source)
            net_param = caffe_pb2.NetParameter()
            net_param.CopyFrom(getattr(p, source))
        else:
            log.info("Creating training net from %s file: %s", source, getattr(p, source))
            net_param = prototxt.read_net_param(getattr(p, source))
        state = caffe_pb2.NetState(phase=TRAIN)
        state.MergeFrom(net_param.state)
        state.MergeFrom(p.train_state)
        net_param.state.CopyFrom(state)
        with net_builder.building(None if source.endswith("_param") else getattr(p, source)), \
                fillers.deferring(bool(p.weights)) as deferred:
            net = Net(net_param, dtype=self._dtype, device=self._device)
        self._load_weights(net, deferred)
        return net

    def _init_test_nets(self) -> list[Net]:
        p = self._param
        generic = p.HasField("net") or p.HasField("net_param")
        num_specific = len(p.test_net_param) + len(p.test_net)
        num_instances = len(p.test_iter)
        if num_instances < num_specific or (not generic and num_instances != num_specific):
            raise SolverError(
                f"test_iter must be specified for each test network: {len(p.test_iter)} test_iter "
                f"value(s) for {num_specific} test_net/test_net_param net(s)"
                + (" plus the generic net" if generic else "")
            )
        if p.test_state and len(p.test_state) != num_instances:
            raise SolverError(
                f"test_state must be unspecified or specified once per test net: "
                f"{len(p.test_state)} test_state(s) for {num_instances} test net(s)"
            )
        if num_instances and p.test_interval <= 0:
            raise SolverError(f"test_interval must be > 0 when there are test nets, got {p.test_interval}")
        sources: list[tuple[str, caffe_pb2.NetParameter]] = []
        sources += [("test_net_param", net_param) for net_param in p.test_net_param]
        sources += [(f"test_net file: {path}", prototxt.read_net_param(path)) for path in p.test_net]
        for _ in range(num_instances - num_specific):
            if p.HasField("net_param"):
                sources.append(("net_param", p.net_param))
            else:
                sources.append((f"net file: {p.net}", prototxt.read_net_param(p.net)))
        nets = []
        for i, (where, source) in enumerate(sources):
            net_param = caffe_pb2.NetParameter()
            net_param.CopyFrom(source)
            state = caffe_pb2.NetState(phase=TEST)
            state.MergeFrom(net_param.state)
            if p.test_state:
                state.MergeFrom(p.test_state[i])
            net_param.state.CopyFrom(state)
            log.info("Creating test net (#%d) specified by %s", i, where)
            with fillers.deferring(bool(p.weights)) as deferred:
                net = Net(net_param, dtype=self._dtype, device=self._device)
            net.debug_info = p.debug_info
            self._load_weights(net, deferred)
            nets.append(net)
        return nets

    def _load_weights(self, net: Net, deferred: list[fillers.DeferredFill]) -> None:
        """Copy the ``weights`` files into ``net``, built with its fills ``deferred``: the fills the
        weights overwrite are never computed (Caffe's random stream stays exact, as with
        ``Net(..., weights_file=)``)."""
        copied: set[str] = set()
        for entry in self._param.weights:
            for name in entry.split(","):
                log.info("Finetuning from %s", name.strip())
                copied |= net.copy_trained_layers_from(name.strip())
        net.fill_what_weights_missed(deferred, copied)

    # ================================================================ access
    @property
    def param(self) -> caffe_pb2.SolverParameter:
        return self._param

    @property
    def net(self) -> Net:
        return self._net

    @property
    def test_nets(self) -> list[Net]:
        return self._test_nets

    @property
    def iter(self) -> int:
        return self._iter

    @property
    def current_step(self) -> int:
        return self._current_step

    @property
    def smoothed_loss(self) -> float:
        return self._smoothed_loss

    def share_weights(self, net: Net) -> None:
        """Make ``net`` use the train net's parameter data in same-named layers (pycaffe)."""
        net.share_trained_layers_with(self._net)

    def add_callback(self, on_start: Callable[[], None], on_gradients_ready: Callable[[], None]) -> None:
        self._callbacks.append((on_start, on_gradients_ready))

    def set_action_function(self, function: Callable[[], str] | None) -> None:
        """``function()`` is polled after each iteration and test pass: "none", "stop" or "snapshot"."""
        self._action_function = function

    def _requested_action(self) -> str:
        if self._action_function is None:
            return NONE
        action = self._action_function()
        if action not in ACTIONS:
            raise SolverError(f"the action function returned {action!r}; expected one of {ACTIONS}")
        return action

    # ================================================================ the loop
    def solve(self, resume_file: str | os.PathLike[str] | None = None) -> None:
        """Train to ``max_iter`` (resuming from a solverstate if given), then snapshot and report."""
        p = self._param
        log.info("Solving %s", self._net.name)
        log.info("Learning Rate Policy: %s", p.lr_policy)
        self._requested_early_exit = False
        if resume_file is not None:
            log.info("Restoring previous solver status from %s", os.fspath(resume_file))
            self.restore(resume_file)
        start_iter = self._iter
        self.step(p.max_iter - self._iter)
        if p.snapshot_after_train and (not p.snapshot or self._iter % p.snapshot != 0):
            self.snapshot()
        if self._requested_early_exit:
            log.info("Optimization stopped early.")
            return
        if p.display and self._iter % p.display == 0:
            loss = self._net.forward()
            self._update_smoothed_loss(f32(loss), start_iter, p.average_loss)
            log.info("Iteration %d, loss = %g", self._iter, self._smoothed_loss)
        if p.test_interval and self._iter % p.test_interval == 0:
            self.test_all()
        log.info("Optimization Done.")

    def step(self, iters: int) -> None:
        """Run ``iters`` iterations (fewer if an action function asks to stop)."""
        p = self._param
        start_iter, stop_iter = self._iter, self._iter + iters
        self._losses, self._smoothed_loss = [], 0.0
        self._timer = time.perf_counter()
        while self._iter < stop_iter:
            self._net.clear_param_diffs()
            if p.test_interval and self._iter % p.test_interval == 0 and (
                self._iter > 0 or p.test_initialization
            ):
                self.test_all()
                if self._requested_early_exit:
                    break
            for on_start, _ in self._callbacks:
                on_start()
            display = bool(p.display) and self._iter % p.display == 0
            self._net.debug_info = display and p.debug_info
            loss = 0.0
            for _ in range(p.iter_size):
                loss = f32(loss + self._net.forward_backward())
            loss = f32(loss / p.iter_size)
            self._update_smoothed_loss(loss, start_iter, p.average_loss)
            if display:
                self._display()
            for _, on_gradients_ready in self._callbacks:
                on_gradients_ready()
            self.apply_update()
            request = self._requested_action()
            if (p.snapshot and self._iter % p.snapshot == 0) or request == SNAPSHOT:
                self._snapshot_during_training()
            if request == STOP:
                self._requested_early_exit = True
                break

    def _update_smoothed_loss(self, loss: float, start_iter: int, average_loss: int) -> None:
        """Running mean of the last ``average_loss`` losses (Caffe's ring buffer, float arithmetic)."""
        if len(self._losses) < average_loss:
            self._losses.append(loss)
            size = len(self._losses)
            self._smoothed_loss = f32(f32(f32(self._smoothed_loss * (size - 1)) + loss) / size)
        else:
            idx = (self._iter - start_iter) % average_loss
            self._smoothed_loss = f32(self._smoothed_loss + f32(f32(loss - self._losses[idx]) / average_loss))
            self._losses[idx] = loss

    def _display(self) -> None:
        now = time.perf_counter()
        lapse = f32(now - self._timer)
        per_s = f32((self._iter - self._iterations_last) / (lapse or 1.0))
        log.info("Iteration %d (%g iter/s, %gs/%d iters), loss = %g",
                 self._iter, per_s, lapse, self._param.display, self._smoothed_loss)
        self._timer, self._iterations_last = now, self._iter
        values = self._net.output_values().tolist()
        for index, ((name, weight), value) in enumerate(zip(self._net.output_elements(), values)):
            log.info("    Train net output #%d: %s", index, output_text(name, value, weight))

    # ================================================================ testing
    def test_all(self) -> list[list[tuple[str, float]]]:
        """Run every test net (``test``); returns each one's mean outputs. Only the root solver
        (rank 0) tests."""
        if not distributed.is_root():
            return []
        results = []
        for test_net_id in range(len(self._test_nets)):
            if self._requested_early_exit:
                break
            results.append(self.test(test_net_id))
        return results

    def test(self, test_net_id: int = 0) -> list[tuple[str, float]]:
        """``test_iter`` forwards of a test net sharing the train weights; the mean of each output."""
        p = self._param
        log.info("Iteration %d, Testing net (#%d)", self._iter, test_net_id)
        net = self._test_nets[test_net_id]
        net.share_trained_layers_with(self._net)
        num_iter = p.test_iter[test_net_id]
        scores: torch.Tensor | None = None
        evaluator = test_outputs.evaluator_for(net, p)  # e.g. SSD's mean AP; None: Caffe's means
        loss = 0.0
        for _ in range(num_iter):
            request = self._requested_action()
            while request != NONE:
                if request == SNAPSHOT:
                    self._snapshot_during_training()
                else:
                    self._requested_early_exit = True
                request = self._requested_action()
            if self._requested_early_exit:
                break
            iter_loss = net.forward()
            if p.test_compute_loss:
                loss = f32(loss + iter_loss)
            if evaluator is not None:
                evaluator.add(net)
                continue
            values = net.output_values()
            scores = values if scores is None else scores.add_(values)
        if self._requested_early_exit:
            log.info("Test interrupted.")
            return []
        if p.test_compute_loss:
            log.info("Test loss: %g", f32(loss / num_iter) if num_iter else math.nan)
        if evaluator is not None and num_iter:
            results = evaluator.results()
            for i, (name, value) in enumerate(results):
                log.info("    Test net output #%d: %s = %g", i, name, value)
            return results
        if scores is None:  # no test iterations
            return []
        results = []
        for i, ((name, weight), total) in enumerate(zip(net.output_elements(), scores.tolist())):
            mean = f32(total / num_iter)
            log.info("    Test net output #%d: %s", i, output_text(name, mean, weight))
            results.append((name, mean))
        return results

    # ================================================================ the update
    def learning_rate(self) -> float:
        """The rate of ``lr_policy`` at the current iter (Caffe's GetLearningRate; step and
        multistep update ``current_step``, multistep by at most one step per call)."""
        policy = self._param.lr_policy
        if policy not in LR_POLICIES:
            raise SolverError(f"Unknown learning rate policy: {policy!r} "
                              f"(lr_policy must be one of {', '.join(LR_POLICIES.names())})")
        rate, self._current_step = LR_POLICIES.get(policy)(self._param, self._iter, self._current_step)
        return rate

    def apply_update(self) -> None:
        """Rate → clip → (normalize, regularize, compute_update_value) per param → update → iter+1."""
        rate = self.learning_rate()
        if self._param.display and self._iter % self._param.display == 0:
            log.info("Iteration %d, lr = %g", self._iter, rate)
        self.clip_gradients()
        for param_id in range(len(self._net.learnable_params)):
            self.normalize(param_id)
            self.regularize(param_id)
            self.compute_update_value(param_id, rate)
        for callback in self.before_update:
            callback(rate)
        self._net.update()
        self._iter += 1

    def clip_gradients(self) -> None:
        """Scale all diffs by clip/‖g‖ when the global L2 norm ‖g‖ exceeds ``clip_gradients`` ≥ 0."""
        clip = self._param.clip_gradients
        if clip < 0:
            return
        params = self._net.learnable_params
        sumsq = 0.0
        for p in params:
            sumsq = f32(sumsq + p.blob.sumsq_diff())
        l2norm = f32(sumsq**0.5)
        if l2norm > clip:
            scale = f32(clip / l2norm)
            log.info("Gradient clipping: scaling down gradients (L2 norm %g > %g) by scale factor %g",
                     l2norm, clip, scale)
            for p in params:
                p.blob.diff.mul_(scale)

    def normalize(self, param_id: int) -> None:
        """Undo the accumulation of ``iter_size`` passes: diff *= 1/iter_size."""
        if self._param.iter_size > 1:
            self._net.learnable_params[param_id].blob.diff.mul_(f32(1.0 / self._param.iter_size))

    def regularize(self, param_id: int) -> None:
        """Weight decay: diff += weight_decay·decay_mult · (w for "L2", sign(w) for "L1")."""
        p = self._net.learnable_params[param_id]
        local_decay = f32(self._param.weight_decay * p.decay_mult)
        if not local_decay:
            return
        kind = self._param.regularization_type
        data = p.blob.data
        if kind == "L2":
            p.blob.diff.add_(data * local_decay)  # rounded product, then the sum (no fused multiply-add)
        elif kind == "L1":
            p.blob.diff.add_(((data > 0).to(data.dtype) - (data < 0).to(data.dtype)) * local_decay)
        else:
            raise SolverError(f"Unknown regularization type: {kind!r} (regularization_type must be L2 or L1)")

    def local_rate(self, param_id: int, rate: float) -> float:
        """``rate · lr_mult`` of one learnable param, in float."""
        return f32(rate * self._net.learnable_params[param_id].lr_mult)

    @abc.abstractmethod
    def compute_update_value(self, param_id: int, rate: float) -> None:
        """Turn the param's (normalized, regularized) diff into the step that ``update`` subtracts."""

    # ================================================================ snapshots
    def _snapshot_filename(self, extension: str) -> str:
        return snapshot.snapshot_filename(self._param.snapshot_prefix, self._iter, extension)

    def _check_snapshot_write_permissions(self) -> None:
        if not self._param.snapshot or not distributed.is_root():  # only rank 0 writes snapshots
            return
        if not self._param.HasField("snapshot_prefix"):
            raise SolverError("In solver params, snapshot is specified but snapshot_prefix is not")
        probe = self._snapshot_filename(".tempfile")
        try:
            with open(probe, "w"):
                pass
            os.remove(probe)
        except OSError as e:
            raise SolverError(f"Cannot write to snapshot prefix {self._param.snapshot_prefix!r}. Make sure "
                              f"that the directory exists and is writable ({e.strerror})") from e

    def snapshot(self) -> None:
        """Write ``<prefix>_iter_<N>.caffemodel[.h5]`` and then the matching ``.solverstate[.h5]``, each
        atomically (``recaffe.io.atomic``), so a solver state always names a complete weights file.
        A file that cannot be written raises ``FileWriteError`` naming it; the solver is unchanged.
        Only the root solver (rank 0) writes; other ranks do nothing."""
        if not distributed.is_root():
            return
        for callback in self.before_snapshot:
            callback()
        hdf5 = self._param.snapshot_format == caffe_pb2.SolverParameter.HDF5
        if hdf5:
            model_filename = self._snapshot_filename(".caffemodel.h5")
            log.info("Snapshotting to HDF5 file %s", model_filename)
            self._net.save_hdf5(model_filename, self._param.snapshot_diff)
        else:
            model_filename = self._snapshot_filename(".caffemodel")
            log.info("Snapshotting to binary proto file %s", model_filename)
            self._net.save(model_filename, self._param.snapshot_diff)
        state_filename = self._snapshot_filename(".solverstate.h5" if hdf5 else ".solverstate")
        kind = "HDF5" if hdf5 else "binary proto"
        log.info("Snapshotting solver state to %s file %s", kind, state_filename)
        state = snapshot.SolverState(
            iter=self._iter,
            current_step=self._current_step,
            learned_net=model_filename,
            history=[h.data.detach().cpu().numpy() for h in self.history],
            resume=resume.capture([self._net, *self._test_nets]),
        )
        snapshot.save(state_filename, state, hdf5)
        self.last_snapshot = state_filename

    def _snapshot_during_training(self) -> None:
        """A snapshot that cannot be written (disk full, permissions) is logged and training goes on:
        nothing partial is left, the training state is kept, and the next snapshot (or SIGHUP's)
        tries again."""
        try:
            self.snapshot()
        except errors.FileWriteError as e:
            log.error("%s; training continues and the next snapshot tries again", e)

    def restore(self, state_file: str | os.PathLike[str]) -> None:
        """Load a solverstate (HDF5 iff the name ends in ".h5"): iter, current_step, history, the
        weights of ``learned_net`` when it names them, and recaffe's exact-resume record when the
        file has one (data positions and random streams, ``recaffe.resume``)."""
        state = snapshot.load(state_file, [blob.count() for blob in self.history])
        if len(state.history) != len(self.history):
            raise SolverError(
                f"{os.fspath(state_file)!r}: Incorrect length of history blobs: the file holds "
                f"{len(state.history)}, this {self.type or 'solver'} solver needs {len(self.history)}")
        for i, (values, blob) in enumerate(zip(state.history, self.history)):
            if values.size != blob.count():
                raise SolverError(f"{os.fspath(state_file)!r}: history blob {i} holds {values.size} "
                                  f"values, the param it belongs to has {blob.count()}")
        self._iter = state.iter
        self.last_snapshot = os.fspath(state_file)
        self._iterations_last = state.iter  # the next display counts iter/s from here, not from 0
        if state.learned_net is not None:
            weights = _resolve(state.learned_net, state_file)
            if snapshot.is_hdf5_state(state_file):
                self._net.copy_trained_layers_from(weights)
            else:
                self._net.copy_trained_layers_from(prototxt.read_net_weights(weights))
        self._current_step = state.current_step
        log.info("%s: restoring history", type(self).__name__)
        for values, blob in zip(state.history, self.history):
            blob.data.copy_(torch.from_numpy(values).reshape(blob.shape))
        if state.resume is not None:
            resume.apply(state.resume, [self._net, *self._test_nets], state_file)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} iter {self._iter} on net {self._net.name!r}>"


_FLOAT_FIELDS = ("base_lr", "gamma", "power", "momentum", "weight_decay", "clip_gradients", "delta",
                 "momentum2", "rms_decay")
_AT_LEAST = (("max_iter", 0), ("display", 0), ("snapshot", 0), ("test_interval", 0), ("average_loss", 1),
             ("iter_size", 1))


def check_solver_param(param: caffe_pb2.SolverParameter) -> None:
    """Caffe's CHECKs on a SolverParameter, made at load rather than at the first iteration, plus
    finiteness of every real-valued field and a sign check of every count."""
    for name in _FLOAT_FIELDS:
        value = getattr(param, name)
        if not math.isfinite(value):
            raise SolverError(f"solver parameter {name} must be a finite number, got {value}")
    for name, least in _AT_LEAST:
        if getattr(param, name) < least:
            raise SolverError(f"solver parameter {name} must be >= {least}, got {getattr(param, name)}")
    for i, value in enumerate(param.test_iter):
        if value < 0:
            raise SolverError(f"solver parameter test_iter (test net #{i}) must be >= 0, got {value}")
    if param.lr_policy:  # none at all is an error at the first update: a solver may be built for its nets
        if param.lr_policy not in LR_POLICIES:
            raise SolverError(f"Unknown learning rate policy: {param.lr_policy!r} "
                              f"(lr_policy must be one of {', '.join(LR_POLICIES.names())})")
        LR_POLICIES.get(param.lr_policy)(param, 0, 0)  # the policy's own CHECKs (stepsize > 0, ...)
    if param.weight_decay and param.regularization_type not in ("L1", "L2"):  # read only with a decay
        raise SolverError(f"Unknown regularization type: {param.regularization_type!r} "
                          f"(regularization_type must be L2 or L1)")


def output_text(name: str, value: float, loss_weight: float) -> str:
    """``name = v`` plus `` (* w = w·v loss)`` for outputs that carry a loss weight."""
    text = f"{name} = {value:g}"
    if loss_weight:
        text += f" (* {loss_weight:g} = {f32(loss_weight * value):g} loss)"
    return text


def _resolve(learned_net: str, state_file: str | os.PathLike[str]) -> str:
    """Caffe opens ``learned_net`` as written (relative to the working directory); if that file
    does not exist, a relative name is also looked up beside the state file."""
    if os.path.exists(learned_net) or os.path.isabs(learned_net):
        return learned_net
    beside = os.path.join(os.path.dirname(os.fspath(state_file)), learned_net)
    return beside if os.path.exists(beside) else learned_net
