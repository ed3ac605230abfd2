"""glibc's ``rand()`` and libstdc++'s ``std::random_shuffle``, as HDF5Data's ``shuffle`` uses them.

Caffe's HDF5Data layer shuffles with ``std::random_shuffle``, which draws from the C library's
``rand()``. Caffe never calls ``srand``, so the stream is glibc's default ``srand(1)`` state and is
shared by the whole process (``set_random_seed`` does not touch it). glibc's ``rand()`` is the
TYPE_3 additive feedback generator of ``random_r``: 34 seed words from a Lehmer generator
(16807 mod 2^31-1), then ``r[i] = r[i-31] + r[i-3] (mod 2^32)``; the first 310 values are
discarded and each output is ``r[i] >> 1``.
"""

from __future__ import annotations

import threading
from collections.abc import MutableSequence
from typing import Any

_MODULUS = 2147483647


def _c_div(a: int, b: int) -> tuple[int, int]:
    """C's truncating division and remainder."""
    q = abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)
    return q, a - q * b


class GlibcRandom:
    """glibc ``rand()`` after ``srand(seed)``."""

    def __init__(self, seed: int = 1) -> None:
        self._lock = threading.Lock()
        self.seed(seed)

    def seed(self, seed: int) -> None:
        word = seed % 2**32 or 1
        word = word - 2**32 if word >= 2**31 else word  # glibc keeps the seed as int32
        state = [word]
        for _ in range(1, 31):
            hi, lo = _c_div(state[-1], 127773)
            word = 16807 * lo - 2836 * hi
            state.append(word + _MODULUS if word < 0 else word)
        state = [w % 2**32 for w in state] + [w % 2**32 for w in state[:3]]
        self._r = state
        for _ in range(310):
            self._step()

    def get_state(self) -> list[int]:
        """The 34 words of the additive feedback register."""
        with self._lock:
            return list(self._r)

    def set_state(self, words: list[int]) -> None:
        if len(words) != 34:
            raise ValueError(f"glibc rand() keeps 34 state words, got {len(words)}")
        with self._lock:
            self._r = [int(w) % 2**32 for w in words]

    def _step(self) -> int:
        r = self._r
        value = (r[-31] + r[-3]) % 2**32
        r.append(value)
        del r[0]
        return value

    def rand(self) -> int:
        """The next value in ``[0, 2^31)``."""
        with self._lock:
            return self._step() >> 1


PROCESS_RAND = GlibcRandom(1)
"""The process-wide ``rand()`` stream (Caffe never seeds it)."""


def random_shuffle(items: MutableSequence[Any], rng: GlibcRandom | None = None) -> None:
    """libstdc++ ``std::random_shuffle(first, last)``: for i = 1..n-1 swap i with rand() % (i+1).

    ``rng`` defaults to the process-wide stream (looked up at call time).
    """
    rng = PROCESS_RAND if rng is None else rng
    for i in range(1, len(items)):
        j = rng.rand() % (i + 1)
        if i != j:
            items[i], items[j] = items[j], items[i]
