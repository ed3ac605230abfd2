"""CPU threads for the kernels: one per core by default, or the count asked for.

PyTorch runs each kernel on one OpenMP thread per core, and every thread waits for the others at
the end of each kernel, each having been given a fixed share of the work. When other processes
keep the cores busy, one of the threads is often descheduled, the others wait for it at every
step, and a net of many small steps runs several times slower than on one thread
(``benchmarks/threads.py`` measures this). So:

* deploy-mode nets (``Net(..., optimize=True)``, ``caffe test -optimize``, ``caffe time
  -optimize``, ``Classifier``/``Detector`` with ``optimize=True``) with an image per thread run
  each kernel on one thread and share a step's pieces among the threads (``recaffe.workers``): a
  thread the system does not schedule takes no piece, and the others do its share, so a busy
  machine costs a pass about one thread's time at worst. With fewer images (batch 1), handing
  pieces over through Python costs more than it saves, and a step runs its kernels on PyTorch's
  threads (``workers.native``; small independent steps run at once, one per thread: see
  ``recaffe.deploy``). Either way the outputs depend on the thread count and the shapes only, so
  they are the same from run to run whatever the load;
* every other net (TRAIN nets, the solver's test nets, plain ``caffe.Net(..., caffe.TEST)``) runs
  PyTorch's kernels on the thread count as they are; give those ``-threads 1`` on a shared machine.

The count is one thread per core (PyTorch's default) unless fixed by ``RECAFFE_NUM_THREADS``, the
command line's ``-threads N``, or ``set_num_threads(n)`` (a direct ``torch.set_num_threads`` is
respected too). Kernels round differently on different thread counts: fix the count for outputs
that are bit-identical across machines.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import threading
from collections.abc import Iterator

import torch

from recaffe import workers

log = logging.getLogger(__name__)

ENV_THREADS = "RECAFFE_NUM_THREADS"


class _Governor:
    """The thread count, and whether the user fixed it."""

    def __init__(self) -> None:
        self.base = torch.get_num_threads()  # PyTorch's default, or the fixed count asked for
        self.fixed = False
        self.expected = self.base  # what this module last set: anything else came from the user
        self.inside = threading.local()  # .workers: set while this thread runs a deploy-mode pass

    def fix(self, count: int) -> None:
        self.base = self.expected = count
        self.fixed = True
        torch.set_num_threads(count)

    def before_forward(self) -> None:
        current = torch.get_num_threads()
        if current != self.expected:  # torch.set_num_threads was called directly: keep it
            self.fix(current)

    @contextlib.contextmanager
    def inference(self) -> Iterator[workers.Workers]:
        if getattr(self.inside, "workers", None) is not None:  # a deploy net run from inside another
            yield self.inside.workers
            return
        self.before_forward()
        count = self.base
        if count > 1:
            torch.set_num_threads(1)  # this thread's kernels; the workers share the pieces
        self.inside.workers = workers.pool(count)
        try:
            yield self.inside.workers
        finally:
            self.inside.workers = None
            if count > 1:
                torch.set_num_threads(count)


_governor = _Governor()


def before_forward() -> None:
    """Before a plain net's forward pass: keep a count set directly with ``torch.set_num_threads``."""
    _governor.before_forward()


def inference() -> contextlib.AbstractContextManager[workers.Workers]:
    """For a deploy-mode forward pass: the workers to share its pieces among (this thread's kernels
    run on one thread meanwhile)."""
    return _governor.inference()


def set_num_threads(count: int) -> None:
    """Run every net's CPU kernels on ``count`` threads (``-threads N``, ``RECAFFE_NUM_THREADS``)."""
    if count < 1:
        raise ValueError(f"the number of threads must be at least 1, got {count}")
    _governor.fix(count)


def threads_from_env() -> int | None:
    """``RECAFFE_NUM_THREADS`` as a thread count (None when unset); anything else is an error."""
    value = os.environ.get(ENV_THREADS, "").strip()
    if not value:
        return None
    count = int(value) if value.isdigit() else 0
    if count < 1:
        raise ValueError(f"{ENV_THREADS}={value!r}: expected a positive number of threads")
    return count


def add_threads_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help=f"CPU threads for the kernels (default: ${ENV_THREADS}, else one per core)")


def apply_threads_flag(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None) is not None:
        set_num_threads(args.threads)


def configure() -> None:
    """Apply ``RECAFFE_NUM_THREADS`` (when recaffe is imported; a bad value is logged and
    ignored, so that ``import recaffe`` never fails on it)."""
    try:
        count = threads_from_env()
    except ValueError as e:
        log.warning("%s; choosing the thread count automatically", e)
        return
    if count is not None:
        set_num_threads(count)
