"""Worker threads that share a step's pieces of work, taken one at a time (deploy mode's threading).

PyTorch parallelises a kernel with OpenMP: each thread gets a fixed share of the work, and the
kernel ends when the slowest has finished. When other processes keep the cores busy, one of the
threads is often off the CPU, the others wait for it at every kernel, and a net of many small
kernels runs several times slower than on one thread. Here the kernels run on one thread each,
and a step's work is cut into pieces ahead of time (by images, or rows, or ranges); the
calling thread and the workers take the next piece whenever they are free. A thread the system
does not schedule takes nothing, and the others do its share: a pass costs about one thread's time
at worst, however busy the machine.

The cut depends only on the shapes and the number of threads, never on which thread runs a piece
or when, so the outputs are the same from run to run however busy the machine is.

A hand-over costs: the worker must be woken (tens of microseconds, more on a virtual machine,
whose idle core the host may have given away, so that the piece then runs from cold caches) and
must take Python's GIL between kernels. For one image's steps this costs more than the second
thread saves, and deploy mode runs them on PyTorch's own threads instead (``native``), which split
a kernel in native code.
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
from collections.abc import Callable, Collection, Sequence
from typing import TypeVar

import torch

Piece = Callable[[], object]
T = TypeVar("T")


class _Job:
    """One call's pieces, the next one to take, and how many are finished; with needs, which
    pieces each must follow, how many of those are left, and the pieces free to take."""

    __slots__ = ("pieces", "taken", "finished", "lock", "done", "error", "waiting", "followers", "free",
                 "left")

    def __init__(self, pieces: Sequence[Piece], needs: Sequence[Collection[int]] | None = None) -> None:
        self.pieces = pieces
        self.taken = itertools.count()  # next() is atomic: each index is handed out once
        self.finished = 0
        self.lock = threading.Condition(threading.Lock())
        self.done = threading.Event()
        self.error: BaseException | None = None
        # with needs: per piece, how many of the pieces it follows are not finished, and which
        # pieces follow it; the pieces whose count is 0 and not taken yet, in a heap (the first in
        # order is taken first)
        self.waiting: list[int] | None = None
        self.followers: list[list[int]] = []
        self.free: list[int] = []
        self.left = len(pieces)  # (with needs) not taken yet
        if needs is not None and any(needs):
            self.waiting = [len(set(after)) for after in needs]
            self.followers = [[] for _ in pieces]
            for i, after in enumerate(needs):
                for j in set(after):
                    self.followers[j].append(i)
            self.free = [i for i, left in enumerate(self.waiting) if left == 0]

    def work(self) -> None:
        """Run pieces until none is left to take."""
        count = len(self.pieces)
        while (index := self._next(count)) < count:
            try:
                if self.error is None or self.waiting is None:
                    self.pieces[index]()
            except BaseException as e:  # handed to the caller, which raises it
                self.error = self.error or e
            with self.lock:
                self.finished += 1
                if self.waiting is not None:
                    for follower in self.followers[index]:
                        self.waiting[follower] -= 1
                        if self.waiting[follower] == 0:
                            heapq.heappush(self.free, follower)
                    self.lock.notify_all()
                if self.finished == count:
                    self.done.set()

    def _next(self, count: int) -> int:
        """The next piece to run: the next in order, or, with needs, the first in order whose
        pieces to follow are finished (waiting until one is; ``count`` once all are taken)."""
        if self.waiting is None:
            return next(self.taken)
        with self.lock:
            while not self.free:
                if not self.left:
                    return count
                self.lock.wait()
            self.left -= 1
            return heapq.heappop(self.free)


class Workers:
    """``count - 1`` worker threads that, with the calling thread, run the pieces given to ``run``.

    Workers start on the first ``run`` with more than one piece; each runs PyTorch's kernels on
    one thread. A ``run`` while another is in progress (another thread's net, or a piece that
    itself calls ``run``) runs its pieces on the calling thread alone.
    """

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError(f"the number of threads must be at least 1, got {count}")
        self.count = count
        self._wake = threading.Condition()
        self._job: _Job | None = None
        self._generation = 0
        self._busy = threading.Lock()
        self._started = 0

    def run(self, pieces: Sequence[Piece], needs: Sequence[Collection[int]] | None = None) -> None:
        """Run every piece once (in no set order, on any of the threads); return when all have run.
        ``needs[i]``: the pieces (each before ``i`` in order) that piece ``i`` must follow. The
        first exception a piece raises is raised here, after the others have finished or, with
        needs, been skipped."""
        if needs is not None and any(j >= i for i, after in enumerate(needs) for j in after):
            raise ValueError(f"a piece must follow only pieces before it, got needs {list(needs)}")
        if self.count == 1 or len(pieces) < 2 or not self._busy.acquire(blocking=False):
            for piece in pieces:
                piece()
            return
        try:
            self._start()
            job = _Job(pieces, needs)
            with self._wake:
                self._job = job
                self._generation += 1
                self._wake.notify_all()
            job.work()
            job.done.wait()
            self._job = None  # a worker waking late finds nothing to do
        finally:
            self._busy.release()
        if job.error is not None:
            raise job.error

    def _start(self) -> None:
        while self._started < self.count - 1:
            ready = threading.Event()
            threading.Thread(target=self._serve, args=(ready,), name=f"recaffe-worker-{self._started}",
                             daemon=True).start()
            ready.wait()  # its thread count is set before the caller sets its own back
            self._started += 1

    def _serve(self, ready: threading.Event) -> None:
        torch.set_num_threads(1)  # this thread's kernels (it also sets the default of new threads,
        seen = self._generation   # which the caller restores when its deploy-mode pass ends)
        torch.set_grad_enabled(False)  # (its pieces are kernels: no autograd, and none to enter)
        ready.set()
        while True:
            with self._wake:
                while self._generation == seen:
                    self._wake.wait()
                seen, job = self._generation, self._job
            if job is not None:
                job.work()

    def stop(self) -> None:
        """Forget the worker threads (after a fork, where only the calling thread exists)."""
        self._wake = threading.Condition()
        self._busy = threading.Lock()
        self._job, self._started = None, 0


def native(count: int, call: Callable[[], T]) -> T:
    """``call()`` with PyTorch's own kernels on ``count`` threads: for one image's convolution,
    which oneDNN splits across its threads in native code, with no hand-over through Python (at
    batch 1 that beats cutting it into pieces). Its outputs depend on ``count`` alone, wherever it
    runs (nested in a run too, where it adds threads rather than fall back to one)."""
    before = torch.get_num_threads()
    if count == before:
        return call()
    torch.set_num_threads(count)
    try:
        return call()
    finally:
        torch.set_num_threads(before)


def split(total: int, parts: int, align: int = 1) -> list[tuple[int, int]]:
    """``[start, end)`` ranges cutting ``range(total)`` into at most ``parts`` near-equal pieces whose
    inner boundaries are multiples of ``align``; no empty range."""
    units = -(-total // align)
    parts = max(1, min(parts, units))
    bounds = [min(total, (units * i // parts) * align) for i in range(parts + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


SERIAL = Workers(1)  # runs every piece on the calling thread: the plain (non-deploy) kernels
_all: list[Workers] = [SERIAL]


def pool(count: int) -> Workers:
    """The process's workers for ``count`` threads (made once per count)."""
    for workers in _all:
        if workers.count == count:
            return workers
    workers = Workers(count)
    _all.append(workers)
    return workers


def _after_fork() -> None:
    for workers in _all:
        workers.stop()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
