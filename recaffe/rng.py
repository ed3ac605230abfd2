"""Caffe's CPU random numbers, bit for bit: boost::mt19937 and Boost 1.74's distributions.

Caffe draws every random number on the CPU from one ``boost::mt19937`` per thread, seeded by
``Caffe::set_random_seed`` (pycaffe ``caffe.set_random_seed``, solver ``random_seed``). This
module reproduces that engine and the distributions Caffe uses on it, so a net built after
``set_random_seed(s)`` gets the same initial weights, dropout masks and crops as Caffe did:

* ``rand()``: one raw 32-bit word (``caffe_rng_rand``).
* ``uniform(n, a, b)``: ``boost::uniform_real`` on ``[a, nextafter(b))`` in float32.
* ``gaussian(n, mu, sigma)``: ``boost::normal_distribution`` (128-layer ziggurat) in float32.
* ``bernoulli_float`` / ``bernoulli_double``: ``boost::bernoulli_distribution<T>``.
* ``uniform_int(k)`` and ``shuffle``: ``boost::uniform_int`` and ``caffe::shuffle``.

Every draw reads words from one buffered stream; vectorised code may look ahead (``peek``) and
then consume exactly what Caffe's scalar code would have (``advance``).

Unseeded, the engine is seeded from ``os.urandom`` like Caffe's ``cluster_seedgen``, and the seed
is logged so the run can be repeated.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import sys
import threading
from collections.abc import Callable, MutableSequence
from typing import Any

import numpy as np

from recaffe.math.floats import libm_float_function

log = logging.getLogger(__name__)

F32 = np.float32
TWO_M24 = F32(2.0**-24)
TWO_M32 = F32(2.0**-32)
_LITTLE_ENDIAN = sys.byteorder == "little"

RngState = tuple[int, np.ndarray, int, np.ndarray]
"""A Caffe stream's state: seed, mt19937's key words and position, the words drawn ahead."""


# --------------------------------------------------------------------------- float32 expf
def expf(x: np.float32) -> np.float32:
    """C's float ``expf`` (glibc's when present; Boost's wedge test calls it)."""
    fn = libm_float_function("expf", 1)
    return F32(fn(float(x))) if fn is not None else F32(math.exp(float(x)))


# ------------------------------------------------------------------------- ziggurat tables
@functools.cache
def _ziggurat_tables() -> dict[str, np.ndarray]:
    """Boost's normal (128 layers) and exponential (256 layers) ziggurat tables, as doubles.

    Built from their defining recurrences at 50 digits and rounded to double, which gives
    exactly the constants compiled into Boost.
    """
    import mpmath as mp

    with mp.workdps(50):
        def normal(r: Any) -> tuple[list[Any], list[Any], Any]:
            f = lambda x: mp.exp(-x * x / 2)  # noqa: E731
            v = r * f(r) + mp.sqrt(mp.pi / 2) * mp.erfc(r / mp.sqrt(2))
            xs, ys = [v / f(r), r], [mp.mpf(0), f(r)]
            for i in range(1, 127):
                ys.append(ys[i] + v / xs[i])
                xs.append(mp.sqrt(-2 * mp.log(ys[i + 1])))
            return xs, ys, v

        def exponential(r: Any) -> tuple[list[Any], list[Any], Any]:
            v = (r + 1) * mp.exp(-r)
            xs, ys = [r + 1, r], [mp.mpf(0), mp.exp(-r)]
            for i in range(1, 255):
                ys.append(ys[i] + v / xs[i])
                xs.append(-mp.log(ys[i + 1]))
            return xs, ys, v

        def closing(build: Any, last: int) -> Any:
            def residual(r: Any) -> Any:
                xs, ys, v = build(r)
                return ys[last] + v / xs[last] - 1
            return residual

        r_norm = mp.findroot(closing(normal, 127), mp.mpf("3.44261985589665212"))
        r_exp = mp.findroot(closing(exponential, 255), mp.mpf("7.69711747013104972"))
        nx, ny, _ = normal(r_norm)
        ex, ey, _ = exponential(r_exp)
        to = lambda xs, end: np.array([float(x) for x in xs] + [end], dtype=np.float64)  # noqa: E731
        return {"X": to(nx, 0.0), "Y": to(ny, 1.0), "EX": to(ex, 0.0), "EY": to(ey, 1.0)}


@functools.cache
def _normal_f32() -> dict[str, np.ndarray]:
    t = _ziggurat_tables()
    x, y = t["X"], t["Y"]
    return {
        "X": x,
        "Xf": x.astype(F32),
        "Yf": y.astype(F32),
        "DX": (x[:-1] - x[1:]).astype(F32),   # f32(X[i] - X[i+1]), difference in double
        "DY": (y[1:] - y[:-1]).astype(F32),   # f32(Y[i+1] - Y[i])
        "convex": x[:-1] >= 1.0,
        "EXf": t["EX"].astype(F32),
        "EYf": t["EY"].astype(F32),
        "EDX": (t["EX"][:-1] - t["EX"][1:]).astype(F32),
        "EDY": (t["EY"][1:] - t["EY"][:-1]).astype(F32),
        # indexed by a word's low byte (bit 0 the sign, bits 1-7 the layer): f32(W >> 8) * XS is
        # f32(f32(W >> 8) * 2^-24) * X[layer] with its sign (scaling by 2^-24 is exact), and a float
        # |x| is below X[layer + 1] exactly when it is below XT, that bound rounded up to float
        "XS": np.array([(F32(1) if b & 1 else F32(-1)) * x.astype(F32)[b >> 1] * TWO_M24
                        for b in range(256)], dtype=F32),
        "XT": np.array([_ceil_f32(x[(b >> 1) + 1]) for b in range(256)], dtype=F32),
    }


def _ceil_f32(value: float) -> np.float32:
    rounded = F32(value)
    return np.nextafter(rounded, F32(np.inf)) if float(rounded) < value else rounded


def _mantissa(words: np.ndarray) -> np.ndarray:
    """f32(W >> 8) * 2^-24: the 24-bit fraction both ziggurats take from a word."""
    return (words >> np.uint32(8)).astype(F32) * TWO_M24


def _unit01(words: np.ndarray) -> np.ndarray:
    """Boost's uniform01 on float: f32(W) * 2^-32 (1.0 means reject and redraw)."""
    return words.astype(F32) * TWO_M32


def _below_expf(y: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``y < expf(a)`` elementwise, as C's expf decides it: exp in double rounded to float is
    within an ulp or two of any libm's expf, so only a ``y`` that close asks the scalar ``expf``.
    """
    e = np.exp(a.astype(np.float64)).astype(F32)
    result = y < e
    ulp = np.spacing(e)
    for j in np.flatnonzero(np.abs(y - e) <= F32(2) * ulp).tolist():
        result[j] = y[j] < expf(a[j])
    return result


def _visited_specials(special: np.ndarray, consumed: np.ndarray) -> np.ndarray:
    """Which special positions start a draw: those no earlier draw read as lookahead.

    A draw at ``special[m]`` reads ``consumed[m]`` words; only where an earlier special reaches
    this far can one be covered, and those rare positions are walked in order.
    """
    visited = np.ones(len(special), dtype=bool)
    if len(special) < 2:
        return visited
    reach = np.maximum.accumulate(special + consumed)
    maybe = np.zeros(len(special), dtype=bool)
    maybe[1:] = reach[:-1] > special[1:]
    for j in np.flatnonzero(maybe).tolist():
        m = j - 1
        while m >= 0 and not (visited[m] and special[m] + consumed[m] > special[j]):
            if reach[m] <= special[j]:
                m = -1  # nothing before m reaches j
                break
            m -= 1
        visited[j] = m < 0
    return visited


# ------------------------------------------------------------------------------ the engine
def check_uniform_range(a: float, b: float) -> None:
    """``uniform(n, a, b)``'s range, checked as Caffe's float: a <= b."""
    if F32(a) > F32(b):
        raise ValueError(f"uniform range needs min <= max, got [{a}, {b}]")


def check_sigma(sigma: float) -> None:
    """``gaussian(n, mu, sigma)``'s sigma: > 0."""
    if not sigma > 0:
        raise ValueError(f"gaussian needs sigma > 0, got {sigma}")


class CaffeRNG:
    """One Caffe random stream: ``boost::mt19937(seed)`` plus Boost's distributions."""

    _BLOCK = 4096
    _MAX_DEFERRED = 4096  # draws queued by ``defer``
    _NORMAL_BLOCK = 1 << 18

    def __init__(self, seed: int) -> None:
        self.seed = int(seed) % 2**32
        self._mt: np.random.RandomState | None = None  # made when first needed: see ``_engine``
        self._buffer = np.empty(0, dtype=np.uint32)
        self._pos = 0
        self._engine_state: tuple[np.ndarray, np.ndarray, int] | None = None  # (buffer, key, pos)
        self._consumed = 0  # words consumed since seeding
        self._deferred: list[Callable[[], None]] = []

    @property
    def _engine(self) -> np.random.RandomState:
        """mt19937 seeded with ``seed`` (the same raw words as boost::mt19937), made on first use:
        a net built with its weights defers every draw, and a process that never draws again
        does not pay for seeding it (nor for importing ``numpy.random``, ~10 ms)."""
        if self._mt is None:
            self._mt = np.random.RandomState(self.seed)
        return self._mt

    # ---------------------------------------------------------- deferred draws
    def defer(self, draw: Callable[[], None]) -> None:
        """Queue ``draw`` (which draws from this stream) to run before anyone next reads the stream.

        Net construction defers the fillers of weights a caffemodel may overwrite: if it does, the
        draws are never needed for their values, only for the stream's position, and are run when
        (if ever) someone reads the stream again: the stream stays exactly Caffe's. A long queue
        (nets built again and again, the stream never read) is run then and there."""
        self._deferred.append(draw)
        if len(self._deferred) > self._MAX_DEFERRED:
            self.settle()

    def settle(self) -> None:
        """Run the deferred draws, in order."""
        while self._deferred:
            draws, self._deferred = self._deferred, []
            for draw in draws:
                draw()

    # ------------------------------------------------------------------ state
    def get_state(self) -> RngState:
        """(seed, mt19937's 624 key words, its position, the words drawn ahead and not yet used):
        all the stream's future depends on (``recaffe.resume`` saves it in a solver state; the NaN
        guard and ``caffe repro`` take it around every iteration). Cheap: the engine only moves
        when the buffer is refilled, so its state is read once per buffer, and the words ahead are
        a view (buffers are replaced, never written in place)."""
        self.settle()
        cached = self._engine_state
        if cached is None or cached[0] is not self._buffer:
            mt = self._engine.get_state(legacy=False)["state"]
            cached = self._engine_state = (self._buffer, np.array(mt["key"], dtype=np.uint32), int(mt["pos"]))
        return self.seed, cached[1], cached[2], self._buffer[self._pos :]

    def set_state(self, seed: int, key: np.ndarray, position: int, buffered: np.ndarray) -> None:
        """Continue exactly where the stream that gave ``get_state()`` was."""
        self.seed = int(seed) % 2**32
        self._engine.set_state({"bit_generator": "MT19937", "has_gauss": 0, "gauss": 0.0,
                                "state": {"key": np.asarray(key, dtype=np.uint32), "pos": int(position)}})
        self._buffer, self._pos = np.asarray(buffered, dtype=np.uint32), 0
        self._engine_state = None
        self._deferred = []  # the position is given: draws deferred before it no longer move it

    # ---------------------------------------------------------------- raw words
    def peek(self, n: int) -> np.ndarray:
        """The next ``n`` words, without consuming them."""
        if self._deferred:
            self.settle()
        have = len(self._buffer) - self._pos
        if have < n:
            more = self._engine.randint(0, 2**32, size=max(n - have, self._BLOCK), dtype=np.uint32)
            self._buffer = np.concatenate([self._buffer[self._pos :], more]) if have else more
            self._pos = 0
        return self._buffer[self._pos : self._pos + n]

    def advance(self, n: int) -> None:
        self.peek(n)
        self._pos += n
        self._consumed += n

    def take(self, n: int) -> np.ndarray:
        words = self.peek(n).copy()
        self.advance(n)
        return words

    def rand(self) -> int:
        """``caffe_rng_rand()``: one raw word."""
        return int(self.take(1)[0])

    def _word(self) -> np.uint32:
        return self.take(1)[0]

    # ----------------------------------------------------------------- uniform
    def uniform(self, n: int, a: float, b: float) -> np.ndarray:
        """``caffe_rng_uniform<float>(n, a, b)``: values in ``[a, b]`` (b' = nextafter(b) excluded)."""
        check_uniform_range(a, b)
        a32, b32 = F32(a), F32(b)
        hi = b32 if b32 == np.finfo(F32).max else np.nextafter(b32, F32(np.inf))
        if F32(hi / F32(2)) - F32(a32 / F32(2)) > np.finfo(F32).max / F32(2):
            return F32(2) * self._uniform_core(n, F32(a32 / F32(2)), F32(hi / F32(2)))
        return self._uniform_core(n, a32, hi)

    def _uniform_core(self, n: int, a: np.float32, hi: np.float32) -> np.ndarray:
        span = F32(hi - a)
        out = np.empty(n, dtype=F32)
        done = 0
        while done < n:
            words = self.peek(n - done)
            values = (words.astype(F32) * TWO_M32) * span + a
            ok = values < hi
            kept = values[ok]
            take = min(len(kept), n - done)
            out[done : done + take] = kept[:take]
            done += take
            # consume the words up to and including the last value used (rejections included)
            self.advance(int(np.flatnonzero(ok)[take - 1]) + 1 if take else len(words))
        return out

    # -------------------------------------------------------------- bernoulli
    def bernoulli_float(self, n: int, p: float) -> np.ndarray:
        """``bernoulli_distribution<float>(p)`` as int32 0/1 (the sparse Gaussian filler's mask)."""
        if F32(p) == 0:
            return np.zeros(n, dtype=np.int32)
        threshold = F32(p) * F32(2.0**32)  # p * f32(4294967295) == p * 2^32
        return (self.take(n).astype(F32) <= threshold).astype(np.int32)

    def bernoulli_double(self, n: int, p: float) -> np.ndarray:
        """``bernoulli_distribution<double>(p)`` as uint8 0/1 (Dropout's mask; ``p`` keep rate)."""
        if p == 0:
            return np.zeros(n, dtype=np.uint8)
        return (self.take(n).astype(np.float64) <= p * 4294967295.0).astype(np.uint8)

    # ---------------------------------------------------------------- integers
    def uniform_int(self, k: int) -> int:
        """``boost::uniform_int<>(0, k)`` (used by ``caffe::shuffle``)."""
        if k == 0:
            return 0
        bucket = (2**32 - 1) // (k + 1)
        if (2**32 - 1) % (k + 1) == k:
            bucket += 1
        while True:
            q = self.rand() // bucket
            if q <= k:
                return q

    def shuffle(self, items: MutableSequence[Any]) -> None:
        """``caffe::shuffle``: Fisher-Yates from the end, ``j = uniform_int(0, i)``."""
        for i in range(len(items) - 1, 0, -1):
            j = self.uniform_int(i)
            items[i], items[j] = items[j], items[i]

    # ------------------------------------------------------------------ normal
    def gaussian(self, n: int, mu: float, sigma: float) -> np.ndarray:
        """``caffe_rng_gaussian<float>(n, mu, sigma)``: f32(f32(Z·sigma) + mu), Z from the ziggurat."""
        check_sigma(sigma)
        z = np.empty(n, dtype=F32)
        done = 0
        while done < n:
            done += self._normal_block(z, done)
        z *= F32(sigma)
        z += F32(mu)
        return z

    def _normal_block(self, out: np.ndarray, start: int) -> int:
        """Fill ``out[start:]`` from one block of words; returns how many values were written.

        Each word position is classified: fast (1 word, accepted), wedge (2 words: the word and a
        uniform01 word), simple tail (3 words: the word and two fast exponentials, accepted) or
        complex (anything rarer: the scalar path runs on the block's words from there, and tells
        the value and how many words it read). The non-fast positions ("special", about 1 in 80)
        decide which words a draw reads as lookahead, so values come out in exactly Boost's order.
        """
        t = _normal_f32()
        need = len(out) - start
        words = self.peek(min(need + need // 16 + 8, self._NORMAL_BLOCK))
        size = len(words)
        low = (words.view(np.uint8)[::4] if _LITTLE_ENDIAN else words & np.uint32(0xFF)).astype(np.intp)
        # the low byte holds the sign (bit 0) and the layer (bits 1-7): one signed table does both
        value = (words >> np.uint32(8)).astype(F32)
        value *= np.take(t["XS"], low, mode="clip")
        keep = np.abs(value) < np.take(t["XT"], low, mode="clip")
        special = np.flatnonzero(~keep)
        layer = low[special] >> 1
        consumed = np.where(layer == 0, 3, 2)
        accepted = np.zeros(len(special), dtype=bool)
        complex_ = consumed + special > size
        self._classify_wedges(words, special, layer, value, accepted, complex_)
        self._classify_tails(words, special, layer, value, accepted, complex_)
        for j in np.flatnonzero(complex_).tolist():
            k = int(special[j])
            block = _BlockWords(words[k:])
            try:
                value[k] = block._normal_scalar()
            except _OutOfWords:
                continue  # stays complex: the draw needs words after the block
            complex_[j], accepted[j], consumed[j] = False, True, block._consumed

        visited = _visited_specials(special, consumed)
        unfinished = np.flatnonzero(visited & complex_)
        stop = int(special[unfinished[0]]) if len(unfinished) else size
        drawn = visited & (special < stop)
        keep[special[drawn & accepted]] = True
        for ahead in range(1, int(consumed.max(initial=1))):  # the words each draw read after its own
            keep[special[drawn & (consumed > ahead)] + ahead] = False
        kept = value[:stop][keep[:stop]]
        if len(kept) >= need:
            out[start:] = kept[:need]
            last = int(np.flatnonzero(keep)[need - 1])
            at = int(np.searchsorted(special, last))
            self.advance(last + (int(consumed[at]) if at < len(special) and special[at] == last else 1))
            return need
        out[start : start + len(kept)] = kept
        self.advance(stop)
        return len(kept)

    @staticmethod
    def _classify_wedges(words, special, layer, value, accepted, complex_) -> None:  # type: ignore[no-untyped-def]
        t = _normal_f32()
        sel = np.flatnonzero((layer != 0) & ~complex_)
        k, i = special[sel], layer[sel]
        xk = np.abs(value[k])
        y01 = _unit01(words[k + 1])
        y = t["Yf"][i] + y01 * t["DY"][i]
        gap = t["Xf"][i] - xk
        a = t["DX"][i] * y01 - gap
        b = y - (t["Yf"][i] + (gap * t["Yf"][i]) * t["Xf"][i])
        convex = t["convex"][i]
        ub, lb = np.where(convex, a, b), np.where(convex, b, a)
        ok = (ub < 0) & (lb < 0)
        density = np.flatnonzero((ub < 0) & ~(lb < 0))  # the exact density test, y < expf(-x²/2)
        ok[density] = _below_expf(y[density], -(xk[density] * xk[density]) / F32(2))
        accepted[sel] = ok
        complex_[sel[y01 >= 1]] = True  # uniform01 rejected its word: rare, scalar path

    @staticmethod
    def _classify_tails(words, special, layer, value, accepted, complex_) -> None:  # type: ignore[no-untyped-def]
        t = _normal_f32()
        sel = np.flatnonzero((layer == 0) & ~complex_)
        k = special[sel]
        e1, e2 = words[k + 1], words[k + 2]
        j1, j2 = (e1 & np.uint32(0xFF)).astype(np.intp), (e2 & np.uint32(0xFF)).astype(np.intp)
        x1, x2 = _mantissa(e1) * t["EXf"][j1], _mantissa(e2) * t["EXf"][j2]
        simple = (x1 < t["EXf"][j1 + 1]) & (x2 < t["EXf"][j2 + 1])
        ts = t["Xf"][1]
        ex = x1 / ts
        ok = simple & (F32(2) * x2 > ex * ex)
        accepted[sel] = ok
        complex_[sel[~ok]] = True
        value[k] = np.where(words[k] & np.uint32(1), F32(1), F32(-1)) * (ex + ts)

    def _normal_scalar(self) -> np.float32:
        """One ziggurat normal, read word by word (the reference path)."""
        t = _normal_f32()
        while True:
            w = self._word()
            sign = F32(1) if w & 1 else F32(-1)
            i = int((w >> 1) & 127)
            x = F32(F32(w >> 8) * TWO_M24) * t["Xf"][i]
            if float(x) < t["X"][i + 1]:
                return x * sign
            if i == 0:
                return self._normal_tail() * sign
            y01 = self._uniform01()
            y = t["Yf"][i] + y01 * t["DY"][i]
            gap = t["Xf"][i] - x
            a = t["DX"][i] * y01 - gap
            b = y - (t["Yf"][i] + (gap * t["Yf"][i]) * t["Xf"][i])
            ub, lb = (a, b) if t["convex"][i] else (b, a)
            if ub < 0 and (lb < 0 or y < expf(-(F32(x * x) / F32(2)))):
                return x * sign

    def _normal_tail(self) -> np.float32:
        ts = _normal_f32()["Xf"][1]
        while True:
            ex = self._exponential() / ts
            ey = self._exponential()
            if F32(2) * ey > ex * ex:
                return ex + ts

    def _uniform01(self) -> np.float32:
        while True:
            v = F32(self._word()) * TWO_M32
            if v < 1:
                return v

    def _exponential(self) -> np.float32:
        """Boost's unit exponential ziggurat (256 layers), in float."""
        t = _normal_f32()
        shift = F32(0)
        while True:
            w = self._word()
            j = int(w & 0xFF)
            x = F32(F32(w >> 8) * TWO_M24) * t["EXf"][j]
            if x < t["EXf"][j + 1]:
                return shift + x
            if j == 0:
                shift = shift + t["EXf"][1]
                continue
            y01 = self._uniform01()
            y = t["EYf"][j] + y01 * t["EDY"][j]
            ub = t["EDX"][j] * y01 - (t["EXf"][j] - x)
            lb = y - (t["EYf"][j + 1] + (t["EXf"][j + 1] - x) * t["EYf"][j + 1])
            if ub < 0 and (lb < 0 or y < expf(-x)):
                return x + shift


class _OutOfWords(Exception):
    """A scalar draw on a block's words needed words after the block."""


class _BlockWords(CaffeRNG):
    """CaffeRNG's scalar draws on a fixed array of words (a block's, from some position on)."""

    def __init__(self, words: np.ndarray) -> None:  # no engine: the words are given
        self._buffer, self._pos, self._consumed = words, 0, 0
        self._deferred = []

    def peek(self, n: int) -> np.ndarray:
        if self._pos + n > len(self._buffer):
            raise _OutOfWords
        return self._buffer[self._pos : self._pos + n]


# ------------------------------------------------------------------- the per-thread stream
_local = threading.local()


def _fresh_seed() -> int:
    """Caffe's cluster_seedgen: 8 bytes of /dev/urandom, of which the engine keeps 32 bits."""
    return int.from_bytes(os.urandom(8), "little") % 2**32


def get_rng() -> CaffeRNG:
    """This thread's Caffe random stream, created (and its seed logged) on first use."""
    rng = getattr(_local, "rng", None)
    if rng is None:
        seed = _fresh_seed()
        log.info("No random seed set; seeding the random stream with %d "
                 "(pass it to set_random_seed to repeat this run)", seed)
        rng = _local.rng = CaffeRNG(seed)
    return rng


def set_rng(stream: CaffeRNG) -> None:
    """Make ``stream`` this thread's Caffe random stream (a restored one, when resuming)."""
    _local.rng = stream


def set_random_seed(seed: int) -> None:
    """``Caffe::set_random_seed``: restart this thread's stream as ``mt19937(seed mod 2^32)``."""
    _local.rng = CaffeRNG(seed)


def get_state() -> RngState:
    """This thread's stream position (``CaffeRNG.get_state``), for ``set_state``."""
    return get_rng().get_state()


def set_state(state: RngState) -> None:
    """Put this thread's stream back where ``get_state`` found it."""
    stream = CaffeRNG(state[0])
    stream.set_state(*state)
    _local.rng = stream
