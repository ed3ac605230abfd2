"""Compiled kernels for deploy mode (``compiled.c``), each one pass where PyTorch needs several.

* LRN across channels: PyTorch computes it as a dozen elementwise kernels, each a pass over the
  blob and a few microseconds of dispatch (GoogLeNet's conv2/norm2: ~2 ms on one thread, barely
  less on two); the C kernel takes each pixel's channels in cache (~0.55 ms).
* MAX and AVE pooling of a channels-last image with Caffe's windows (MAX: the same bits).
* Winograd's input and output transforms (``recaffe.math.winograd``), read from and written to
  channels-last memory directly: no padded copy of the input, no output larger than the image,
  the bias and ReLU in the same pass.
* A matrix-vector product (an inner product of one image), four rows at a time, reading ahead.
* Softmax of at most ``SOFTMAX_VALUES`` values (a classifier's scores), whose five PyTorch kernels
  cost more to dispatch than to run.

The C file is compiled the first time it is needed, with the system's C compiler (``$CC``, else
``cc``) for this machine's CPU (``-march=native``, ``-ffp-contract=off``: sums and products are
rounded as written), into ``$XDG_CACHE_HOME/recaffe/compiled`` (else ``~/.cache/recaffe/compiled``),
named by the SHA-256 of the source, the flags and the CPU's model and features; later processes
load that file. Python calls the kernels through ctypes, which releases the GIL for the call, so
two threads run them at once.

Where no compiler works, or ``RECAFFE_COMPILED=off``, ``load`` gives None and deploy mode runs the
layers' own PyTorch kernels: the same values within rounding (the compiled MAX pooling gives the
same bits; the LRN sums in the same order; the rest may differ in the last bits), a little slower.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import pathlib
import platform
import secrets
import shutil
import subprocess
from collections.abc import Callable
from typing import cast

import torch

from recaffe.math import pieces
from recaffe.math.pooling import PoolWindow
from recaffe.workers import Workers, split

ENV = "RECAFFE_COMPILED"
OFF = "off"
SOURCE = pathlib.Path(__file__).with_name("compiled.c")
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-ffp-contract=off", "-shared", "-fPIC")
_LONG, _FLOAT, _POINTER = ctypes.c_long, ctypes.c_float, ctypes.c_void_p
# The most values ``softmax`` takes: its exp is C's scalar one, which PyTorch's vectorised kernel
# beats once the kernels' dispatch no longer dominates (a classifier's 1000 scores: 10 against 150 µs).
SOFTMAX_VALUES = 1 << 16
MAX_CHANNELS, MAX_LRN_SIZE = 8192, 129  # as in compiled.c (MAX_CHANNELS, 2 * MAX_HALF + 1)


def folder() -> pathlib.Path:
    """Where the built libraries are kept: ``$XDG_CACHE_HOME/recaffe/compiled``, else
    ``~/.cache/recaffe/compiled``."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "recaffe" / "compiled"


def _cpu() -> bytes:
    """The CPU's model and features (the code is built for them)."""
    try:
        lines = pathlib.Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    keep = [line for line in lines if line.startswith(("model name", "flags"))][:2]
    return "\n".join([platform.machine(), platform.processor(), *keep]).encode()


@functools.cache
def load() -> ctypes.CDLL | None:
    """The compiled kernels (compiled now if no process has yet), or None where they cannot be."""
    if os.environ.get(ENV, "").strip().lower() == OFF:
        return None
    compiler = os.environ.get("CC", "").strip() or "cc"
    try:
        lib = _open(compiler, library(compiler))
        _declare(lib)
    except (OSError, AttributeError, subprocess.SubprocessError) as e:
        logging.getLogger(__name__).info("recaffe's compiled kernels are not built (%s): PyTorch's run", e)
        return None
    return lib


def library(compiler: str) -> pathlib.Path:
    """Where the library built by ``compiler`` for this CPU is kept."""
    digest = hashlib.sha256(SOURCE.read_bytes() + "\0".join((compiler, *FLAGS)).encode() + _cpu()).hexdigest()
    return folder() / f"kernels-{digest[:32]}.so"


def _open(compiler: str, path: pathlib.Path) -> ctypes.CDLL:
    """The library at ``path``, built first where there is none or it cannot be loaded (damaged)."""
    if path.exists():
        try:
            return ctypes.CDLL(str(path))
        except OSError:
            path.unlink(missing_ok=True)
    _compile(compiler, path)
    return ctypes.CDLL(str(path))


def _declare(lib: ctypes.CDLL) -> None:
    """The kernels' argument and result types (a library without one of them raises AttributeError)."""
    lib.lrn_across.argtypes = [_POINTER, _POINTER, _LONG, _LONG, _LONG, _FLOAT, _FLOAT, _FLOAT]
    lib.lrn_across.restype = ctypes.c_int
    lib.pool.argtypes = [_POINTER, _POINTER, *[_LONG] * 11, ctypes.c_int, _LONG, _LONG]
    lib.pool.restype = None
    lib.matvec.argtypes = [_POINTER, _POINTER, _POINTER, _POINTER, _LONG, _LONG]
    lib.matvec.restype = None
    lib.winograd_input.argtypes = [_POINTER, _POINTER, _POINTER, *[_LONG] * 10, _POINTER]
    lib.winograd_input.restype = None
    lib.winograd_output.argtypes = [_POINTER, _POINTER, _POINTER, _POINTER, *[_LONG] * 8, ctypes.c_int,
                                    _FLOAT, _POINTER]
    lib.winograd_output.restype = None
    lib.softmax.argtypes = [_POINTER, _POINTER, _LONG, _LONG, _LONG, _POINTER]
    lib.softmax.restype = None


def _compile(compiler: str, path: pathlib.Path) -> None:
    """Build ``SOURCE`` into ``path`` (through a file of its own, renamed: processes may race)."""
    if shutil.which(compiler) is None:
        raise FileNotFoundError(compiler)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        subprocess.run([compiler, *FLAGS, "-o", str(partial), str(SOURCE), "-lm"], check=True,
                       capture_output=True, timeout=120)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def takes(x: torch.Tensor) -> bool:
    """Whether the pooling and LRN kernels take ``x``: 4-D float32 on the CPU, in channels-last
    memory."""
    return (x.dim() == 4 and x.dtype == torch.float32 and x.device.type == "cpu"
            and x.is_contiguous(memory_format=torch.channels_last))


def takes_lrn(x: torch.Tensor, size: int) -> bool:
    """Whether ``lrn_across`` takes ``x`` and a window of ``size`` channels."""
    return takes(x) and x.shape[1] <= MAX_CHANNELS and size <= MAX_LRN_SIZE


def _row_major(*tensors: torch.Tensor) -> bool:
    """Whether the kernels take the tensors as flat row-major float32 on the CPU."""
    return all(t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous() for t in tensors)


def _run(workers: Workers, total: int, values: int, piece: Callable[[int, int], None]) -> None:
    """``piece(first, last)`` over ``range(total)``, cut among the threads when the work (``values``)
    is worth a hand-over (``pieces.parts``: ``MIN_PIECE_VALUES`` a piece)."""
    parts = pieces.parts(workers, values, pieces.MIN_PIECE_VALUES)
    if parts == 1:
        piece(0, total)
        return
    workers.run([functools.partial(piece, first, last) for first, last in split(total, parts)])


def lrn_across(workers: Workers, x: torch.Tensor, size: int, alpha: float, beta: float,
               k: float) -> torch.Tensor | None:
    """LRN across channels of ``x`` (channels-last), or None where the kernels cannot take it."""
    lib = load()
    if lib is None or not takes_lrn(x, size):
        return None
    y = torch.empty_like(x, memory_format=torch.channels_last)
    channels, item = x.shape[1], x.element_size()

    def piece(first: int, last: int) -> None:
        offset = first * channels * item
        lib.lrn_across(x.data_ptr() + offset, y.data_ptr() + offset, last - first, channels, size,
                       alpha, beta, k)

    _run(workers, x.numel() // channels, x.numel(), piece)
    return y


def pool(workers: Workers, x: torch.Tensor, window: PoolWindow, out_hw: tuple[int, int],
         ave: bool) -> torch.Tensor | None:
    """Caffe's MAX (or AVE) pooling of ``x`` (channels-last) over ``window`` into ``out_hw``, or
    None where the kernels cannot take it."""
    lib = load()
    if lib is None or not takes(x):
        return None
    n, c, h, w = x.shape
    y = torch.empty((n, c, *out_hw), dtype=x.dtype, memory_format=torch.channels_last)
    geometry = (h, w, c, *out_hw, *window.kernel, *window.stride, *window.pad)

    def piece(first: int, last: int) -> None:
        lib.pool(x.data_ptr(), y.data_ptr(), *geometry, int(ave), first, last)

    _run(workers, n * out_hw[0], x.numel(), piece)
    return y


def matvec(w: torch.Tensor, x: torch.Tensor, b: torch.Tensor | None, y: torch.Tensor) -> bool:
    """``y = w x (+ b)`` for w (N, K) row-major, x (K,), b and y (N,), all float32 on the CPU,
    on one thread; False (nothing done) where the kernels cannot take them."""
    lib = load()
    if lib is None or not _row_major(w, x, y, *([] if b is None else [b])):
        return False
    lib.matvec(w.data_ptr(), x.data_ptr(), None if b is None else b.data_ptr(), y.data_ptr(), w.shape[0],
               w.shape[1])
    return True


def winograd_input(x: torch.Tensor, v: torch.Tensor, b_t: torch.Tensor, m: int, pad: tuple[int, ...],
                   first: int, last: int, cols: int) -> None:
    """Winograd's input transform (``recaffe.math.winograd``) of tile rows ``first..last`` of the
    image ``x`` (C, H, W) in channels-last memory into ``v`` (n², tiles, C); ``b_t`` is Bᵀ (n, n)
    in float32. Only where ``load()`` gives the kernels."""
    lib = cast(ctypes.CDLL, load())
    n, (c, height, width) = b_t.shape[0], x.shape
    scratch = x.new_empty(n * n * c)
    lib.winograd_input(x.data_ptr(), v.data_ptr(), b_t.data_ptr(), n, m, height, width, c, pad[0], pad[1],
                       first, last, cols, scratch.data_ptr())


def winograd_output(products: torch.Tensor, y: torch.Tensor, a_t: torch.Tensor, bias: torch.Tensor | None,
                    slope: float | None, first: int, last: int, cols: int) -> None:
    """Winograd's output transform of ``products`` (n², tiles, K) into the pixels of tile rows
    ``first..last`` of the image ``y`` (K, H, W) in channels-last memory, plus ``bias``, then the
    ReLU of ``slope`` unless None; ``a_t`` is Aᵀ (m, n) in float32."""
    lib = cast(ctypes.CDLL, load())
    (m, n), (k, height, width) = a_t.shape, y.shape
    scratch = y.new_empty(m * n * k)
    lib.winograd_output(products.data_ptr(), y.data_ptr(), a_t.data_ptr(),
                        None if bias is None else bias.data_ptr(), n, m, height, width, k, first, last, cols,
                        int(slope is not None), float(slope or 0.0), scratch.data_ptr())


def softmax(x: torch.Tensor, y: torch.Tensor, dims: tuple[int, int, int]) -> bool:
    """Caffe's softmax of ``x`` viewed as ``dims`` (outer, channels, inner) along the channels into
    ``y`` (may be ``x``), both row-major float32 on the CPU, on one thread; False (nothing done)
    where the kernels cannot take them or ``x`` has more than ``SOFTMAX_VALUES`` values."""
    lib = load()
    if lib is None or x.numel() > SOFTMAX_VALUES or not _row_major(x, y):
        return False
    scratch = x.new_empty(2 * dims[2])
    lib.softmax(x.data_ptr(), y.data_ptr(), *dims, scratch.data_ptr())
    return True
