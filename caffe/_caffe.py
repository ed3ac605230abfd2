"""The surface of BVLC's compiled ``caffe._caffe`` module, written over recaffe.

Here live the binding-level pieces: module functions (modes, logging, layer types, solver
counts), ``Blob``/``BlobVec`` and ``Layer`` (recaffe's ``recaffe.pylayer``, which Python layers run on), the
binding-level ``Net`` (``_forward``, ``_blobs``, ``save``...), ``Timer`` and ``NCCL``.
``caffe.pycaffe`` adds the Pythonic Net methods and the solvers.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np
import torch

import recaffe
from recaffe import device, distributed, logs
from recaffe.debug import nan_guard
from recaffe.distributed.sync import GradientSync
from recaffe.layers.data import memory_data
from recaffe.pylayer.base import Layer, layer_view
from recaffe.pylayer.blobs import Blob, BlobVec, sync, synced, wrap
from recaffe.registry import LAYERS

__version__ = recaffe.__version__

_logger = logging.getLogger("recaffe.pycaffe")

PathLike = str | os.PathLike[str]
_NetT = TypeVar("_NetT", bound="Net")

__all__ = [
    "NCCL", "Blob", "BlobVec", "Layer", "Net", "NonFiniteError", "Timer", "__version__", "has_nccl",
    "init_log", "layer_type_list", "log", "set_device", "set_mode_cpu", "set_mode_gpu", "set_multiprocess",
    "set_nan_check", "set_random_seed", "set_solver_count", "set_solver_rank", "solver_count", "solver_rank",
]

# ================================================================ module functions
set_mode_cpu = device.set_mode_cpu
set_mode_gpu = device.set_mode_gpu
set_device = device.set_device
set_random_seed = recaffe.set_random_seed
NonFiniteError = nan_guard.NonFiniteError


def set_nan_check(enabled: bool = True) -> None:
    """recaffe's NaN guard: when on, ``solver.step()`` and ``net.forward()`` raise ``NonFiniteError``
    (a FloatingPointError) naming the iteration, phase, layer and blob where a value first stopped
    being finite. Off by default, as Caffe has no such check."""
    nan_guard.set_enabled(enabled)

solver_count = distributed.solver_count
set_solver_count = distributed.set_solver_count
solver_rank = distributed.solver_rank
set_solver_rank = distributed.set_solver_rank
multiprocess = distributed.multiprocess
set_multiprocess = distributed.set_multiprocess


def has_nccl() -> bool:
    """Whether multi-process training is available (``torch.distributed``: NCCL on CUDA, gloo)."""
    return bool(torch.distributed.is_available())


def layer_type_list() -> list[str]:
    """Every registered layer type, sorted (Caffe's LayerRegistry::LayerTypeList)."""
    return LAYERS.names()


_GLOG_LEVELS = (logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)  # minloglevel 0..3


def init_log(level: int = 0, stderr: bool | None = None) -> None:
    """Send recaffe's log to stderr in glog's format (``recaffe.logs``), from glog level ``level``
    (0 INFO, 1 WARNING, 2 ERROR, 3 FATAL) up.

    As with glog, only ERROR and above reach stderr unless ``stderr`` is true (logtostderr;
    default: the ``GLOG_logtostderr`` environment variable). glog's log files are written only
    when ``GLOG_log_dir`` is set, and then hold the same lines as stderr.
    """
    if stderr is None:
        stderr = os.environ.get("GLOG_logtostderr", "0").strip() not in ("", "0", "false")  # noqa: SIM112
    threshold = _GLOG_LEVELS[min(max(int(level), 0), 3)]
    logs.setup_logging(threshold if stderr else max(threshold, logging.ERROR), logger="recaffe")


def log(message: str) -> None:
    """Log ``message`` at INFO (Caffe's ``LOG(INFO)``)."""
    _logger.info("%s", message)


# ================================================================ Net (binding level)
def _check_file(path: Any) -> str:
    """The bindings' CheckFile: RuntimeError when ``path`` cannot be opened."""
    name = os.fspath(path)
    try:
        with open(name, "rb"):
            pass
    except OSError:
        raise RuntimeError(f"Could not open file {name}") from None
    return name


class Net:
    """The bindings' Net over a ``recaffe.Net`` (kept as ``self._net``).

    ``Net(network_file, phase, level=0, stages=None, weights=None)``, or the deprecated
    ``Net(network_file, weights_file, phase)``; RuntimeError when a file cannot be opened.
    recaffe's keywords: ``dialect="ssd"`` reads a Caffe fork's prototxt in that dialect (by default
    it is detected; see docs/forks.md), ``optimize=True`` deploy mode.
    """

    def __init__(self, network_file: PathLike, *args: Any, optimize: bool = False, dialect: str | None = None,
                 **kwargs: Any) -> None:
        weights: PathLike | None
        if args and isinstance(args[0], str | bytes | os.PathLike):
            weights, phase = _legacy_args(*args, **kwargs)
            _logger.warning("DEPRECATION WARNING - deprecated use of Python interface; use "
                         "Net(%r, %d, weights=%r) instead", os.fspath(network_file), phase,
                         os.fspath(weights))
            level, stages = 0, None
        else:
            phase, level, stages, weights = _new_args(*args, **kwargs)
        path = _check_file(network_file)
        weights_file = _check_file(weights) if weights is not None else None
        # optimize=True: recaffe's deploy mode (fused layers, blob memory reused; see docs/deploy.md)
        net = recaffe.Net(path, int(phase), int(level), tuple(stages or ()), weights_file=weights_file,
                          optimize=optimize, dialect=dialect)
        self._attach(net)

    @classmethod
    def _from_native(cls: type[_NetT], net: recaffe.Net) -> _NetT:
        """Wrap an existing recaffe Net (a solver's train or test net)."""
        wrapper = cls.__new__(cls)
        wrapper._attach(net)
        return wrapper

    def _attach(self, net: recaffe.Net) -> None:
        self._net = net
        self._blob_views = [wrap(b) for b in net.blob_list]  # held, so identities stay stable
        self._layer_views = [layer_view(layer) for layer in net.layers]

    # ------------------------------------------------------------ structure
    @property
    def _blobs(self) -> list[Blob]:
        return list(self._blob_views)

    @property
    def layers(self) -> list[Layer]:
        return list(self._layer_views)

    @property
    def _blob_names(self) -> list[str]:
        return list(self._net.blob_names)

    @property
    def _layer_names(self) -> list[str]:
        return list(self._net.layer_names)

    @property
    def _inputs(self) -> list[int]:
        return list(self._net.input_blob_indices)

    @property
    def _outputs(self) -> list[int]:
        return list(self._net.output_blob_indices)

    @property
    def _blob_loss_weights(self) -> list[float]:
        return list(self._net.blob_loss_weights)

    def _top_ids(self, layer_index: int) -> list[int]:
        return list(self._net.top_id_vecs[layer_index])

    def _bottom_ids(self, layer_index: int) -> list[int]:
        return list(self._net.bottom_id_vecs[layer_index])

    # ------------------------------------------------------------ running
    def _forward(self, start: int, end: int, keep: Iterable[str] = ()) -> float:
        """Forward layers ``start..end`` (inclusive); returns the weighted loss. A deploy-mode net
        keeps the blobs named in ``keep`` (and its inputs and outputs) readable."""
        sync()
        return nan_guard.checked_forward(self._net, start, end, keep)

    def _backward(self, start: int, end: int) -> None:
        """Backward layers ``start`` down to ``end`` (inclusive)."""
        sync()
        self._net.backward(start, end)

    def reshape(self) -> None:
        sync()
        self._net.reshape()

    def clear_param_diffs(self) -> None:
        sync()
        self._net.clear_param_diffs()

    def before_forward(self, callback: Callable[[int], Any]) -> None:
        self._net.before_forward.append(synced(callback))

    def after_forward(self, callback: Callable[[int], Any]) -> None:
        self._net.after_forward.append(synced(callback))

    def before_backward(self, callback: Callable[[int], Any]) -> None:
        self._net.before_backward.append(synced(callback))

    def after_backward(self, callback: Callable[[int], Any]) -> None:
        self._net.after_backward.append(synced(callback))

    # ------------------------------------------------------------ weights
    def copy_from(self, path: PathLike) -> None:
        """Load weights by layer name from a ``.caffemodel`` or an HDF5 weights file."""
        sync()
        self._net.copy_trained_layers_from(os.fspath(path))

    def share_with(self, other: Net) -> None:
        """Use ``other``'s parameter data in the layers of the same name."""
        sync()
        self._net.share_trained_layers_with(other._net)

    def save(self, path: PathLike) -> None:
        """Write the weights as a binary ``.caffemodel`` (no diffs)."""
        sync()
        self._net.save(os.fspath(path))

    def save_hdf5(self, path: PathLike) -> None:
        sync()
        self._net.save_hdf5(os.fspath(path))

    def load_hdf5(self, path: PathLike) -> None:
        sync()
        self._net.load_hdf5(os.fspath(path))

    # ------------------------------------------------------------ MemoryData
    def _set_input_arrays(self, data: np.ndarray, labels: np.ndarray) -> None:
        """Point the MemoryData layer (layer 0) at ``data`` and ``labels`` (N a batch multiple)."""
        layer = self._net.layers[0] if self._net.layers else None
        if not isinstance(layer, memory_data.MemoryDataLayer):
            raise RuntimeError("set_input_arrays may only be called if the first layer is a MemoryDataLayer")
        p = layer.param.memory_data_param
        _check_array(data, "data array", p.channels, p.height, p.width)
        _check_array(labels, "labels array", 1, 1, 1)
        if data.shape[0] != labels.shape[0]:
            raise RuntimeError("data and labels must have the same first dimension")
        if data.shape[0] % p.batch_size != 0:
            raise RuntimeError("first dimensions of input arrays must be a multiple of batch size")
        layer.reset(data, labels, data.shape[0])

    def __repr__(self) -> str:
        return f"<caffe.Net {self._net.name!r}: {len(self._layer_views)} layers>"


def _new_args(phase: int, level: int = 0, stages: Sequence[str] | None = None,
              weights: PathLike | None = None) -> tuple[int, int, Sequence[str] | None, PathLike | None]:
    return phase, level, stages, weights


def _legacy_args(weights_file: PathLike, phase: int) -> tuple[PathLike, int]:
    return weights_file, phase


def _check_array(array: np.ndarray, name: str, channels: int, height: int, width: int) -> None:
    if not isinstance(array, np.ndarray) or not array.flags.c_contiguous:
        raise RuntimeError(f"{name} must be C contiguous")
    if array.ndim != 4:
        raise RuntimeError(f"{name} must be 4-d")
    if array.dtype != np.float32:
        raise RuntimeError(f"{name} must be float32")
    for axis, (what, want) in enumerate((("number of channels", channels), ("height", height),
                                         ("width", width)), start=1):
        if array.shape[axis] != want:
            raise RuntimeError(f"{name} has wrong {what}")


# ================================================================ Timer, NCCL
class Timer:
    """Caffe's Timer: ``start()``, ``stop()``, ``ms`` (reading ``ms`` stops a running timer).

    In GPU mode it waits for the device at start and stop, so it times the device's work as
    Caffe's CUDA-event timer does.
    """

    def __init__(self) -> None:
        self._started: float | None = None
        self._elapsed = 0.0
        self._has_run = False

    def start(self) -> None:
        if self._started is None:
            _wait_for_device()
            self._started = time.perf_counter()
            self._has_run = True

    def stop(self) -> None:
        if self._started is not None:
            _wait_for_device()
            self._elapsed = time.perf_counter() - self._started
            self._started = None

    @property
    def ms(self) -> float:
        if not self._has_run:
            _logger.warning("Timer has never been run before reading time.")
            return 0.0
        self.stop()
        return self._elapsed * 1000.0


def _wait_for_device() -> None:
    if device.mode() == "gpu":
        torch.cuda.synchronize()


class NCCL:
    """Caffe's NCCL over ``torch.distributed`` (``recaffe.distributed``), for BVLC's
    ``python/train.py``: each process sets ``set_solver_count``/``set_solver_rank`` (and
    ``set_multiprocess(True)``), builds its solver, then ``NCCL(solver, uid)`` joins the run at
    ``uid`` (from ``NCCL.new_uid()`` in the parent), ``bcast()`` copies rank 0's weights, and
    ``solver.add_callback(nccl)`` all-reduces the gradients before each update.

    With ``solver_count() == 1`` it joins nothing and does nothing. Calling it after backward of
    each layer (``net.after_backward(nccl)``, Caffe's layer-wise reduce) is accepted; the
    gradients are reduced in one buffer when they are all ready.
    """

    def __init__(self, solver: Any, uid: bytes | str) -> None:
        self.solver = solver
        self.uid = uid
        self._sync: GradientSync | None = None
        if solver_count() > 1:
            native = getattr(solver, "_solver", None)
            if native is None:
                raise RuntimeError("NCCL(solver, uid) needs the solver of this rank")
            params = native.net.learnable_params
            where = params[0].blob.device if params else torch.device("cpu")
            world = distributed.World(solver_rank(), solver_count(), distributed.Rendezvous.from_uid(uid),
                                      where)
            self._sync = GradientSync(native, world)

    @staticmethod
    def new_uid() -> bytes:
        """A rendezvous for a new run: ``MASTER_ADDR`` (default 127.0.0.1) and a free port."""
        return distributed.new_uid()

    def bcast(self) -> None:
        """Every rank takes rank 0's weights."""
        if self._sync is not None:
            self._sync.broadcast()

    def on_start(self) -> None:
        """Solver callback: nothing to do before the forward passes."""

    def on_gradients_ready(self) -> None:
        """Solver callback: the diffs summed over the ranks and scaled by 1/solver_count."""
        if self._sync is not None:
            self._sync.on_gradients_ready()

    def __call__(self, layer_index: int) -> None:
        """``net.after_backward(nccl)``: the reduction waits for ``on_gradients_ready``."""
