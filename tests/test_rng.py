"""Caffe's random stream: engine test vectors and each distribution's exact rules (caffe-rng spec)."""

from __future__ import annotations

import numpy as np
import pytest

from recaffe import rng
from recaffe.rng import CaffeRNG


def words(seed: int, n: int) -> list[int]:
    return CaffeRNG(seed).take(n).tolist()


def test_engine_is_boost_mt19937() -> None:
    assert words(1, 5) == [1791095845, 4282876139, 3093770124, 4005303368, 491263]
    assert words(7, 5) == [327741615, 976413892, 3349725721, 1369975286, 1882953283]


def test_seed_wider_than_32_bits_is_reduced() -> None:
    assert words(2**32 + 7, 3) == words(7, 3)


def test_peek_does_not_consume() -> None:
    rng = CaffeRNG(3)
    ahead = rng.peek(10).copy()
    assert rng.take(10).tolist() == ahead.tolist()


def test_uniform_uses_float32_and_nextafter_bound() -> None:
    rng = CaffeRNG(5)
    w = CaffeRNG(5).take(4)
    span = np.nextafter(np.float32(1), np.float32(np.inf)) - np.float32(0)
    expected = (w.astype(np.float32) * np.float32(2.0**-32)) * np.float32(span) + np.float32(0)
    assert rng.uniform(4, 0.0, 1.0).tobytes() == expected.astype(np.float32).tobytes()


@pytest.mark.parametrize(("a", "b"), [(0.0, 0.0), (5.0, 5.0), (-1.0, 0.0), (1000.0, 1000.001)])
def test_uniform_edges_stay_in_range(a: float, b: float) -> None:
    values = CaffeRNG(11).uniform(2000, a, b)
    assert values.dtype == np.float32
    assert (values >= np.float32(a)).all() and (values <= np.float32(b)).all()


def test_uniform_rejects_reversed_range() -> None:
    with pytest.raises(ValueError, match="min <= max"):
        CaffeRNG(1).uniform(3, 1.0, 0.0)


def test_uniform_rejection_skips_words() -> None:
    """(0, 0) draws on [0, 2^-149): words whose value rounds onto the bound are skipped."""
    rng = CaffeRNG(1)
    n = 5000
    raw = CaffeRNG(1).take(3 * n)
    bound = np.nextafter(np.float32(0), np.float32(1))
    values = (raw.astype(np.float32) * np.float32(2.0**-32)) * bound
    kept = values[values < bound][:n]
    assert rng.uniform(n, 0.0, 0.0).tobytes() == kept.tobytes()


def test_bernoulli_float_threshold() -> None:
    """p = f32(1/3): true iff f32(W) <= p * 2^32, i.e. W <= 1431655871 (the tie rounds up)."""
    rng = CaffeRNG(0)
    rng._buffer = np.array([1431655871, 1431655872, 0, 4294967295], dtype=np.uint32)
    rng._pos = 0
    assert rng.bernoulli_float(4, float(np.float32(1 / 3))).tolist() == [1, 0, 1, 0]


def test_bernoulli_double_threshold() -> None:
    """Dropout's keep rate 1 - f32(0.3) in double keeps W <= 3006477055."""
    rng = CaffeRNG(0)
    rng._buffer = np.array([3006477055, 3006477056], dtype=np.uint32)
    rng._pos = 0
    p = 1.0 - float(np.float32(0.3))
    assert rng.bernoulli_double(2, p).tolist() == [1, 0]


def test_bernoulli_zero_probability_draws_nothing() -> None:
    rng = CaffeRNG(9)
    assert rng.bernoulli_float(5, 0.0).tolist() == [0] * 5
    assert rng.rand() == words(9, 1)[0]


def test_uniform_int_and_shuffle() -> None:
    rng = CaffeRNG(4)
    assert rng.uniform_int(0) == 0  # no word consumed
    first = CaffeRNG(4).rand()
    assert rng.uniform_int(9) == first // ((2**32 - 1) // 10)
    items = list(range(10))
    CaffeRNG(4).shuffle(items)
    assert sorted(items) == list(range(10)) and items != list(range(10))


@pytest.mark.parametrize("seed", [1, 2, 5, 7, 1909, 2296])
def test_vectorised_normal_equals_the_scalar_reference(seed: int) -> None:
    """Fast path, wedges, tails and uniform01 rejections (seeds 1909, 2296) agree word for word."""
    n = 60_000
    fast = CaffeRNG(seed)
    values = fast.gaussian(n, 0.0, 1.0)
    slow = CaffeRNG(seed)
    reference = np.array([slow._normal_scalar() for _ in range(n)], dtype=np.float32)
    assert values.tobytes() == reference.tobytes()
    assert fast.rand() == slow.rand()  # both consumed exactly the same words


def test_gaussian_scales_then_shifts_in_float32() -> None:
    z = CaffeRNG(3).gaussian(100, 0.0, 1.0)
    expected = z * np.float32(3.3) + np.float32(-0.7)
    assert CaffeRNG(3).gaussian(100, -0.7, 3.3).tobytes() == expected.tobytes()


def test_gaussian_needs_positive_sigma() -> None:
    with pytest.raises(ValueError, match="sigma > 0"):
        CaffeRNG(1).gaussian(2, 0.0, 0.0)


@pytest.mark.parametrize("draw", [10, 5000])  # within the buffered words, and across a refill
def test_get_state_then_set_state_repeats_the_stream(draw: int) -> None:
    rng.set_random_seed(7)
    rng.get_rng().uniform(100, 0.0, 1.0)
    state = rng.get_state()
    first = rng.get_rng().uniform(draw, 0.0, 1.0)
    rng.set_state(state)
    assert rng.get_rng().uniform(draw, 0.0, 1.0).tobytes() == first.tobytes()
    rng.set_state(state)  # a state can be put back twice
    assert rng.get_rng().uniform(draw, 0.0, 1.0).tobytes() == first.tobytes()
