"""Background batch loading for the prefetching data layers (Caffe's ``BasePrefetchingDataLayer``).

A ``Prefetcher`` calls a loader's ``load_batch()`` in a daemon thread and keeps up to ``depth``
finished batches queued (Caffe's ``prefetch``, default 4). The loader owns everything the batches
depend on (cursor, list position, the transformer's engine), and only the thread touches it after
start, so the batches come out in the same order with the same numbers however the threads are
scheduled. An exception in the loader is handed to the consumer, which re-raises it from
``next()``; the thread then ends. ``stop()`` (also run when the owner is garbage-collected, see
``bind``) ends the thread and releases the loader.
"""

from __future__ import annotations

import queue
import threading
import weakref
from dataclasses import dataclass
from typing import Protocol

import numpy as np

_POLL_S = 0.05


@dataclass
class Batch:
    """One batch: ``data`` (N, ...) and, when the layer outputs labels, ``label`` (N,)."""

    data: np.ndarray
    label: np.ndarray | None = None


class BatchLoader(Protocol):
    def load_batch(self) -> Batch: ...


class Prefetcher:
    """Runs ``loader.load_batch()`` ahead of time in a thread; ``next()`` returns batches in order."""

    def __init__(self, loader: BatchLoader, depth: int, name: str) -> None:
        self._queue: queue.Queue[Batch | BaseException] = queue.Queue(max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=_run, args=(loader, self._queue, self._stop), name=f"prefetch {name}", daemon=True
        )
        self._thread.start()

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


def _run(loader: BatchLoader, out: queue.Queue, stop: threading.Event) -> None:
    try:
        while not stop.is_set():
            try:
                item: Batch | BaseException = loader.load_batch()
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
        if close is not None:
            close()
