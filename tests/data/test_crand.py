"""glibc rand() and std::random_shuffle (HDF5Data's shuffle)."""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

import pytest

from recaffe.data.crand import GlibcRandom, random_shuffle


def test_default_state_values() -> None:
    # glibc's rand() after srand(1) (the state a program starts in)
    stream = GlibcRandom(1)
    assert [stream.rand() for _ in range(3)] == [1804289383, 846930886, 1681692777]
    assert GlibcRandom(0).rand() == 1804289383  # seed 0 means 1


@pytest.mark.parametrize("seed", [1, 7, 12345, 2**31 + 5])
def test_matches_the_c_library(seed: int) -> None:
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("needs glibc to compare with")
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.srand(ctypes.c_uint(seed))
    ours = GlibcRandom(seed)
    assert [libc.rand() for _ in range(400)] == [ours.rand() for _ in range(400)]


def test_random_shuffle_swaps_with_rand_mod_i_plus_1() -> None:
    items, stream = list(range(6)), GlibcRandom(1)
    expect, ref = list(range(6)), GlibcRandom(1)
    for i in range(1, 6):
        j = ref.rand() % (i + 1)
        expect[i], expect[j] = expect[j], expect[i]
    random_shuffle(items, stream)
    assert items == expect and sorted(items) == list(range(6))
