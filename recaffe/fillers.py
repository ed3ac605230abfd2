"""Caffe's weight fillers, drawing from Caffe's random stream so seeded nets match Caffe bit for bit.

Values are computed in float32 on the CPU exactly as Caffe's ``filler.hpp`` does (on CUDA too:
Caffe's GPU build drew from cuRAND instead, so GPU-initialised Caffe weights are not reproducible
anywhere), then copied into the blob on its device and dtype.

Fan rules (Xavier, MSRA): ``fan_in = count / shape[0]``, ``fan_out = count / shape[1]`` (``count``
for 1-D blobs), integer division; ``variance_norm`` picks fan_in (default), fan_out or their mean.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from recaffe.blob import Blob
from recaffe.proto import caffe_pb2
from recaffe.registry import FILLERS
from recaffe.rng import CaffeRNG, check_sigma, check_uniform_range

F32 = np.float32
FillerFn = Callable[[Blob, caffe_pb2.FillerParameter, CaffeRNG], np.ndarray]


def fill(blob: Blob, param: caffe_pb2.FillerParameter, rng: CaffeRNG) -> None:
    """Fill ``blob.data`` with the filler ``param.type`` (Caffe's GetFiller + Fill)."""
    fn = _check(blob, param)
    if param.type == "constant":  # (the float32 value, without a numpy array of the blob's size)
        blob.data.fill_(float(F32(param.value)))
        return
    values = fn(blob, param, rng)
    blob.data.copy_(torch.from_numpy(values.reshape(blob.shape)))


def _check(blob: Blob, param: caffe_pb2.FillerParameter) -> FillerFn:
    """The filler function, once the blob and the parameters are known to be fillable."""
    if blob.count() == 0:
        raise ValueError(f"cannot fill an empty blob of shape {blob.shape} ({param.type} filler)")
    if param.type != "gaussian" and param.sparse != -1:
        raise ValueError(f"the {param.type!r} filler does not support sparse ({param.sparse})")
    fn = FILLERS.get(param.type)
    _check_values(blob, param)
    return fn


# ------------------------------------------------------------------ deferred fills
_DRAWING = ("uniform", "gaussian", "positive_unitball", "xavier", "msra")  # the fillers that draw
_local = threading.local()


@dataclass
class DeferredFill:
    """A parameter blob's fill postponed while its net is built with weights to come.

    ``wanted`` stays True unless the net learns that the values will never be read (the weights
    overwrite the blob, or it takes a shared owner's data); the draw then only moves the stream.
    """

    blob: Blob
    param: caffe_pb2.FillerParameter
    rng: CaffeRNG
    wanted: bool = True

    @property
    def draws(self) -> bool:
        return self.param.type in _DRAWING

    def __call__(self) -> None:
        if self.wanted:
            fill(self.blob, self.param, self.rng)
        elif self.draws:
            FILLERS.get(self.param.type)(self.blob, self.param, self.rng)  # the draws, not the values

    def drop_values(self) -> None:
        """Only the stream's position matters now: keep the shape, let the blob go."""
        self.wanted = False
        self.blob = Blob(self.blob.shape)  # allocates nothing until read (never, here)


def fill_param(blob: Blob, param: caffe_pb2.FillerParameter, rng: CaffeRNG) -> None:
    """``fill`` a layer's parameter blob, or, inside ``deferring()``, check the filler now and
    fill later (``keep_needed``); a filler that draws is queued on ``rng`` (``CaffeRNG.defer``)
    and runs, in order, before the stream is next read."""
    pending: list[DeferredFill] | None = getattr(_local, "pending", None)
    if pending is None:
        fill(blob, param, rng)
        return
    _check(blob, param)
    entry = DeferredFill(blob, param, rng)
    pending.append(entry)
    if entry.draws:
        rng.defer(entry)


def _check_values(blob: Blob, param: caffe_pb2.FillerParameter) -> None:
    """The errors the fillers would raise computing the values, raised before any draw."""
    if param.type == "bilinear":
        _bilinear_size(blob)
    if param.type == "uniform":
        check_uniform_range(param.min, param.max)
    if param.type == "gaussian":
        check_sigma(param.std)
    if param.type == "gaussian" and param.sparse < -1:
        raise ValueError(f"gaussian filler: sparse must be >= -1, got {param.sparse}")
    if param.type == "gaussian" and param.sparse >= 0 and blob.num_axes < 1:
        raise ValueError("gaussian filler: sparse needs a blob with at least one axis")


@contextlib.contextmanager
def deferring(active: bool = True) -> Iterator[list[DeferredFill]]:
    """Inside: ``fill_param`` defers the fills; yields the deferred fills, in order."""
    pending: list[DeferredFill] = []
    if not active:
        yield pending
        return
    outer = getattr(_local, "pending", None)
    _local.pending = pending
    try:
        yield pending
    finally:
        _local.pending = outer


def keep_needed(pending: list[DeferredFill], unread: Callable[[Blob], bool]) -> None:
    """The fills of the blobs ``unread`` says nobody will read only move the stream (lazily);
    the others get their values now, drawn in Caffe's order."""
    for entry in pending:
        if unread(entry.blob):
            entry.drop_values()
        elif not entry.draws:
            entry()  # (constant, bilinear: no draws, so in any order)
    for rng in {id(entry.rng): entry.rng for entry in pending if entry.wanted and entry.draws}.values():
        rng.settle()


@FILLERS.register("constant")
def constant(blob: Blob, param: caffe_pb2.FillerParameter, rng: CaffeRNG) -> np.ndarray:
    """Every element = ``value`` (no draws)."""
    return np.full(blob.count(), F32(param.value), dtype=F32)


@FILLERS.register("uniform")
def uniform(blob: Blob, param: caffe_pb2.FillerParameter, rng: CaffeRNG) -> np.ndarray:
    """U[min, max]."""
    return rng.uniform(blob.count(), param.min, param.max)


@FILLERS.register("gaussian")
def gaussian(blob: Blob, param: caffe_pb2.FillerParameter, rng: CaffeRNG) -> np.ndarray:
    """N(mean, std); with ``sparse >= 0`` each value is kept with probability sparse/shape[0].

    The mask multiplies as float x int, so masked negatives become -0.0 as in Caffe.
    """
    values = rng.gaussian(blob.count(), param.mean, param.std)
    if param.sparse >= 0:  # (sparse < -1 and a 0-axis blob are refused by _check_values)
        p = F32(F32(param.sparse) / F32(blob.shape[0]))
        values = values * rng.bernoulli_float(blob.count(), float(p)).astype(F32)
    return values


@FILLERS.register("positive_unitball")
def positive_unitball(blob: Blob, param: caffe_pb2.FillerParameter, rng: CaffeRNG) -> np.ndarray:
    """U[0, 1], then each of the shape[0] rows divided by its (sequential float32) sum."""
    values = rng.uniform(blob.count(), 0.0, 1.0).reshape(blob.shape[0], -1)
    sums = np.cumsum(values, axis=1, dtype=F32)[:, -1:]  # cumsum adds in index order, like Caffe
    return values / sums


def _fan(blob: Blob, param: caffe_pb2.FillerParameter) -> np.float32:
    count = blob.count()
    fan_in = count // blob.shape[0]
    fan_out = count // blob.shape[1] if blob.num_axes > 1 else count
    norm = caffe_pb2.FillerParameter
    if param.variance_norm == norm.AVERAGE:
        return F32(fan_in + fan_out) / F32(2)
    if param.variance_norm == norm.FAN_OUT:
        return F32(fan_out)
    return F32(fan_in)


@FILLERS.register("xavier")
def xavier(blob: Blob, param: caffe_pb2.FillerParameter, rng: CaffeRNG) -> np.ndarray:
    """U[-s, s] with s = sqrt(3 / n), n the fan chosen by ``variance_norm``."""
    scale = np.sqrt(F32(3) / _fan(blob, param))
    return rng.uniform(blob.count(), -scale, scale)


@FILLERS.register("msra")
def msra(blob: Blob, param: caffe_pb2.FillerParameter, rng: CaffeRNG) -> np.ndarray:
    """N(0, sqrt(2 / n)), n the fan chosen by ``variance_norm``."""
    std = np.sqrt(F32(2) / _fan(blob, param))
    return rng.gaussian(blob.count(), 0.0, std)


@FILLERS.register("bilinear")
def bilinear(blob: Blob, param: caffe_pb2.FillerParameter, rng: CaffeRNG) -> np.ndarray:
    """Bilinear upsampling kernel, the same (K, K) in every slice of a 4-D, square blob.

    ``f = ceil(K/2)``, ``c = (K-1)/(2f)``; ``w(x, y) = (1 - |x/f - c|)(1 - |y/f - c|)``.
    """
    height = width = _bilinear_size(blob)
    f = -(-width // 2)
    c = F32((width - 1) / (2.0 * f))
    index = np.arange(blob.count())
    x = (index % width).astype(F32)
    y = ((index // width) % height).astype(F32)
    return (F32(1) - np.abs(x / F32(f) - c)) * (F32(1) - np.abs(y / F32(f) - c))


def _bilinear_size(blob: Blob) -> int:
    """The kernel's size: the blob must be 4-D with square kernels."""
    if blob.num_axes != 4:
        raise ValueError(f"bilinear filler needs a 4-D blob, got shape {blob.shape}")
    height, width = blob.shape[2], blob.shape[3]
    if height != width:
        raise ValueError(f"bilinear filler needs a square kernel, got {height}x{width}")
    return width
