"""CPU threads for the kernels: a fixed count when asked for, else as many as the machine has free.

PyTorch runs each kernel on one OpenMP thread per core, and every thread waits for the others at
the end of each step. When other processes keep the cores busy, one of our threads is often
descheduled, the others wait for it at every step, and a net of many small steps runs several
times slower than on one thread (``benchmarks/threads.py`` measures this). So, by default:

* deploy-mode nets (``Net(..., optimize=True)``, ``caffe test -optimize``, ``caffe time
  -optimize``, ``Classifier``/``Detector`` with ``optimize=True``) run on as many threads as there
  are cores not busy with other processes, at least one and at most PyTorch's default. The
  share of the cores the rest of the machine used is read from ``/proc/stat`` (less this
  process's own CPU time), at most every 0.25 s, at the start of a forward pass. Elsewhere
  than Linux the count stays fixed;
* every other net (TRAIN nets, the solver's test nets, plain ``caffe.Net(..., caffe.TEST)``) keeps
  PyTorch's default count throughout, so that its outputs stay bit-reproducible on a given machine
  whatever else it runs (the kernels' rounding depends on the thread count). Deploy mode already
  trades the last bits for speed (folded BatchNorm), so it may also pick its threads.

A fixed count, for every net, comes from ``RECAFFE_NUM_THREADS``, the command line's
``-threads N``, or ``set_num_threads(n)`` (and a direct ``torch.set_num_threads`` is respected).
Deploy-mode outputs can differ in their last bits between thread counts; fix the count to make
them bit-identical across runs on a busy machine.
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import torch

log = logging.getLogger(__name__)

ENV_THREADS = "RECAFFE_NUM_THREADS"
SAMPLE_SECONDS = 0.25


def _cpu_busy_seconds() -> float | None:
    """CPU-seconds all CPUs have spent busy since boot (``/proc/stat``), None where unreadable."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 8:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
    steal = int(fields[8]) if len(fields) > 8 else 0
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class _Governor:
    """The thread count for deploy-mode nets, from how busy the other processes keep the CPUs."""

    def __init__(self) -> None:
        self.base = torch.get_num_threads()  # PyTorch's default, or the fixed count asked for
        self.fixed = False
        self.expected = self.base  # what this module last set: anything else came from the user
        self.cpus = os.cpu_count() or 1
        self.sample = self._sample()
        self.inference = self.base

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        busy = _cpu_busy_seconds()
        return None if busy is None else (time.monotonic(), busy, time.process_time())

    def fix(self, count: int) -> None:
        self.base = self.expected = self.inference = count
        self.fixed = True
        torch.set_num_threads(count)

    def free_cpus(self) -> float | None:
        """Cores the rest of the machine left idle since the last sample (None: not yet known)."""
        now = self._sample()
        if now is None or self.sample is None or now[0] - self.sample[0] < SAMPLE_SECONDS:
            return None
        wall = now[0] - self.sample[0]
        others = max(0.0, (now[1] - self.sample[1]) - (now[2] - self.sample[2])) / wall
        self.sample = now
        return self.cpus - others

    def before_forward(self, adaptive: bool) -> None:
        current = torch.get_num_threads()
        if current != self.expected:  # torch.set_num_threads was called directly: keep it
            self.fix(current)
        if self.fixed:
            return
        if adaptive:
            free = self.free_cpus()
            if free is not None:
                self.inference = max(1, min(self.base, int(free + 0.2)))
        wanted = self.inference if adaptive else self.base
        if wanted != current:
            torch.set_num_threads(wanted)
            self.expected = wanted


_governor = _Governor()


def before_forward(adaptive: bool) -> None:
    """Pick the thread count for a forward pass: from the free cores for a deploy-mode net
    (``adaptive``), the fixed default for every other net."""
    _governor.before_forward(adaptive)


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
                        help=f"CPU threads for the kernels (default: ${ENV_THREADS}, else as many as "
                             f"the machine has free for inference, one per core for training)")


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
