"""Background batch loading for the prefetching data layers (Caffe's ``BasePrefetchingDataLayer``).

A ``Prefetcher`` calls a loader's ``load_batch()`` in a daemon thread and keeps up to ``depth``
finished batches queued (Caffe's ``prefetch``, default 4). The loader owns everything the batches
depend on (cursor, list position, the transformer's engine), and only the thread touches it after
start, so the batches come out in the same order with the same numbers however the threads are
scheduled. An exception in the loader is handed to the consumer, which re-raises it from
``next()``; the thread then ends. ``stop()`` (also run when the owner is garbage-collected, see
``bind``) ends the thread and releases the loader.

For exact resume (``recaffe.resume``), each batch carries the loader's ``resume_point()`` as of
just after it was loaded (cheap to take; written out only when a snapshot asks for it), and
``restart`` stops the thread, lets the caller move the loader (dropping the batches queued
ahead), and starts a new thread from there.
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from recaffe.proto import caffe_pb2

_POLL_S = 0.05


@dataclass
class Batch:
    """One batch: ``data`` (N, ...) and, when the layer outputs labels, ``label`` (N,)."""

    data: np.ndarray
    label: np.ndarray | None = None
    resume: Callable[[caffe_pb2.RecaffeDataState], None] | None = None  # the loader after this batch


class BatchLoader(Protocol):
    def load_batch(self) -> Batch: ...

    def resume_point(self) -> Callable[[caffe_pb2.RecaffeDataState], None]: ...

    def load_state(self, state: caffe_pb2.RecaffeDataState, where: str) -> None: ...


class Prefetcher:
    """Runs ``loader.load_batch()`` ahead of time in a thread; ``next()`` returns batches in order."""

    def __init__(self, loader: BatchLoader, depth: int, name: str) -> None:
        self._loader, self._depth, self._name = loader, max(1, depth), name
        self._start()

    def _start(self) -> None:
        self._queue: queue.Queue[Batch | BaseException] = queue.Queue(self._depth)
        self._stop = threading.Event()
        self._keep = threading.Event()  # set by restart: the thread leaves the loader open
        self._thread = threading.Thread(target=_run, args=(self._loader, self._queue, self._stop, self._keep),
                                        name=f"prefetch {self._name}", daemon=True)
        self._thread.start()

    def restart(self, move: Callable[[BatchLoader], None]) -> None:
        """Stop the thread, drop the queued batches, ``move(loader)``, and start loading again."""
        self._keep.set()
        self.stop()
        move(self._loader)
        self._start()

    def bind(self, owner: object) -> None:
        """Stop the thread when ``owner`` is garbage-collected."""
        weakref.finalize(owner, self.stop)

    def next(self) -> Batch:
        while True:
            if not self._thread.is_alive() and self._queue.empty():
                raise RuntimeError("the prefetch thread has stopped")
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if isinstance(item, BaseException):
                raise item
            return item

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()


def _run(loader: BatchLoader, out: queue.Queue, stop: threading.Event, keep: threading.Event) -> None:
    try:
        while not stop.is_set():
            try:
                batch = loader.load_batch()
                batch.resume = loader.resume_point()
                item: Batch | BaseException = batch
            except Exception as e:  # handed to the consumer, which raises it from next()
                item = e
            while not stop.is_set():
                try:
                    out.put(item, timeout=_POLL_S)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return
    finally:
        close = getattr(loader, "close", None)
        if close is not None and not keep.is_set():
            close()
