"""Workers: every piece runs once on some thread; errors, nesting and concurrent callers."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable

import pytest
import torch

from recaffe import workers
from recaffe.workers import Workers, split


def test_every_piece_runs_once() -> None:
    pool = Workers(3)
    counts: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()

    def piece(i: int) -> None:
        with lock:
            counts[i] += 1

    for _ in range(20):
        pool.run([lambda i=i: piece(i) for i in range(17)])
    assert counts == {i: 20 for i in range(17)}


def failing_at(failed: int, ran: list[int]) -> Callable[[int], None]:
    """A piece that raises for index ``failed`` and notes every other index it runs in ``ran``."""
    def piece(i: int) -> None:
        if i == failed:
            raise ValueError(f"piece {failed} failed")
        ran.append(i)

    return piece


def test_the_first_error_is_raised_after_the_other_pieces_ran() -> None:
    pool = Workers(2)
    ran: list[int] = []
    piece = failing_at(3, ran)
    with pytest.raises(ValueError, match="piece 3 failed"):
        pool.run([lambda i=i: piece(i) for i in range(8)])
    assert sorted(ran) == [0, 1, 2, 4, 5, 6, 7]
    pool.run([lambda: ran.append(99), lambda: ran.append(100)])  # still usable
    assert ran[-2:] in ([99, 100], [100, 99])


def test_a_piece_starts_after_the_pieces_it_needs_have_finished() -> None:
    """A diamond and a chain on three threads, many times: each piece starts only after those it
    follows ended. After a piece fails, those not started yet are skipped (its followers among
    them), and its error is raised."""
    pool = Workers(3)
    needs = [set(), set(), {0}, {0, 1}, {2, 3}, set(), {5}]
    events: list[tuple[str, int]] = []
    lock = threading.Lock()

    def piece(i: int) -> None:
        with lock:
            events.append(("start", i))
        with lock:
            events.append(("end", i))

    for _ in range(50):
        events.clear()
        pool.run([lambda i=i: piece(i) for i in range(len(needs))], needs)
        when = {event: position for position, event in enumerate(events)}
        assert len(events) == 2 * len(needs)
        assert all(when[("end", j)] < when[("start", i)] for i, after in enumerate(needs) for j in after)
    ran: list[int] = []
    failing = failing_at(2, ran)
    with pytest.raises(ValueError, match="piece 2 failed"):
        pool.run([lambda i=i: failing(i) for i in range(len(needs))], needs)
    assert 4 not in ran and {0, 1}.issubset(ran)
    with pytest.raises(ValueError, match="must follow only pieces before it"):
        pool.run([lambda: None, lambda: None], [{1}, set()])


def test_a_piece_may_run_pieces_and_callers_may_overlap() -> None:
    pool = Workers(2)
    done: list[str] = []
    lock = threading.Lock()

    def note(name: str) -> None:
        with lock:
            done.append(name)

    def outer(i: int) -> None:  # runs its own pieces on its thread: the workers are busy
        pool.run([lambda: note(f"{i}a"), lambda: note(f"{i}b")])

    callers = [threading.Thread(target=pool.run, args=([lambda i=i: outer(i) for i in range(4)],))
               for _ in range(3)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=60)
    assert not any(caller.is_alive() for caller in callers)
    assert sorted(done) == sorted(f"{i}{s}" for i in range(4) for s in "ab" for _ in range(3))


def test_after_a_fork_the_caller_runs_the_pieces() -> None:
    pool = Workers(2)
    pool.run([lambda: None, lambda: None])  # workers started
    pool.stop()  # what a forked child does: its threads are gone
    ran: list[int] = []
    pool.run([lambda: ran.append(1), lambda: ran.append(2)])
    assert sorted(ran) == [1, 2]


@pytest.mark.parametrize(("total", "parts", "align"), [(10, 3, 1), (10, 4, 4), (7, 9, 1), (96, 2, 16),
                                                        (100, 3, 16), (5, 1, 8), (1, 4, 16)])
def test_split_covers_the_range_in_aligned_pieces(total: int, parts: int, align: int) -> None:
    ranges = split(total, parts, align)
    assert ranges[0][0] == 0 and ranges[-1][1] == total
    assert all(a < b for a, b in ranges) and len(ranges) <= parts
    assert all(b == c for (_, b), (c, _) in zip(ranges, ranges[1:]))
    assert all(b % align == 0 for _, b in ranges[:-1])


def test_one_pool_per_count() -> None:
    assert workers.pool(3) is workers.pool(3)
    assert workers.pool(1) is workers.SERIAL
    with pytest.raises(ValueError, match="at least 1"):
        Workers(0)


def test_native_runs_the_call_on_that_many_threads_and_restores_the_count() -> None:
    def call() -> int:
        return torch.get_num_threads()

    def failing() -> None:
        raise RuntimeError("inside")

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert workers.native(3, call) == 3 and torch.get_num_threads() == 1
        with pytest.raises(RuntimeError, match="inside"):
            workers.native(2, failing)
        assert torch.get_num_threads() == 1
        assert workers.native(1, call) == 1
    finally:
        torch.set_num_threads(before)
