"""Joining and leaving a distributed run: rendezvous, process group, collectives, fault handling.

A run is ``solver_count`` processes, one per rank. They meet at a rendezvous (a ``TCPStore`` at
``host:port``, hosted by rank 0 or by torchrun's agent), build one ``torch.distributed`` process
group on it (NCCL when the rank trains on a CUDA device, gloo on the CPU), and start a watchdog
thread (``recaffe.distributed.watchdog``) that ends this process with a FATAL line naming the
rank that died. Where they meet and how long they wait: ``recaffe.distributed.rendezvous``.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import logging
import multiprocessing.util
import time
from collections.abc import Iterator

import torch
import torch.distributed as dist

from recaffe.distributed import settings, watchdog
from recaffe.distributed.rendezvous import DistributedError, Rendezvous, fault_timeout

log = logging.getLogger("recaffe.distributed")

# Collectives may wait as long as the root solver's test passes take; the watchdog, not this,
# notices a dead rank.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)


class World:
    """This process's membership of a run: collectives that never hang on a dead rank.

    Joining sets the solver count and rank (``recaffe.distributed.settings``), so the solver built
    afterwards seeds, shards its data, tests and logs as rank ``rank``. ``leave()`` at the end;
    ``fail(message)`` when this rank cannot go on, so the others stop at once naming it.
    """

    def __init__(self, rank: int, size: int, rendezvous: Rendezvous, device: torch.device,
                 timeout: float | None = None, verbose: bool = False) -> None:
        if not 0 <= rank < size:
            raise DistributedError(f"solver rank {rank} is outside solver count {size}")
        if dist.is_initialized():
            raise DistributedError("this process already belongs to a distributed run")
        self.rank, self.size, self.device = rank, size, torch.device(device)
        self.timeout = fault_timeout() if timeout is None else timeout
        settings.set_solver_count(size)
        settings.set_solver_rank(rank)
        settings.set_multiprocess(True)
        settings.quiet_unless_root(verbose)
        self.backend = "nccl" if self.device.type == "cuda" else "gloo"
        log.info("Joining a run of %d solvers as rank %d at %s:%d (%s)", size, rank, rendezvous.host,
                 rendezvous.port, self.backend)
        wait = datetime.timedelta(seconds=5 * self.timeout)
        try:
            store = dist.TCPStore(rendezvous.host, rendezvous.port, size,
                                  is_master=rank == 0 and not rendezvous.agent_hosts_store, timeout=wait)
        except (RuntimeError, OSError) as e:
            where = f"{rendezvous.host}:{rendezvous.port}"
            raise DistributedError(f"rank {rank}: cannot reach the rendezvous at {where}: {e}") from e
        self._store = dist.PrefixStore("recaffe", store)
        self._watchdog = watchdog.Watchdog(rank, size, rendezvous, self.timeout)
        self._watchdog.register(self._store)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        try:
            dist.init_process_group(self.backend, store=dist.PrefixStore("group", store), rank=rank,
                                    world_size=size, timeout=COLLECTIVE_TIMEOUT)
        except RuntimeError as e:
            raise DistributedError(f"rank {rank}: cannot form the process group of {size} ranks: {e}") from e
        self._watchdog.start()
        self._left = False
        # pycaffe scripts never say they are done: leave when the process ends (multiprocessing's
        # children skip atexit and run its own exit hooks instead)
        atexit.register(self.leave)
        multiprocessing.util.Finalize(None, self.leave, exitpriority=100)

    def all_reduce(self, tensor: torch.Tensor) -> None:
        """Sum ``tensor`` over the ranks, in place."""
        try:
            dist.all_reduce(tensor)
        except RuntimeError as e:
            self._watchdog.collective_failed(e)

    def broadcast(self, tensor: torch.Tensor, src: int = 0) -> None:
        """Overwrite ``tensor`` with rank ``src``'s."""
        try:
            dist.broadcast(tensor, src)
        except RuntimeError as e:
            self._watchdog.collective_failed(e)

    def fail(self, message: str) -> None:
        """Tell the other ranks this one is going down (they stop with a FATAL naming it)."""
        self._left = True
        self._watchdog.report_failure(self._store, message)
        # no watchdog call into the store may be under way when the interpreter shuts down: a daemon
        # thread stopped inside C++ code then aborts the process (SIGABRT instead of exit status 1)
        self._watchdog.stop()

    def leave(self) -> None:
        """Finish (once): rank 0 waits until every rank is done, so the store it hosts outlives them."""
        if self._left:
            return
        self._left = True
        self._watchdog.finish(self._store)
        while self.rank == 0 and not self._watchdog.all_done(self._store):
            time.sleep(self._watchdog.interval)
        self._watchdog.stop()
        dist.destroy_process_group()
        log.info("Rank %d left the run.", self.rank)


@contextlib.contextmanager
def membership(world: World | None) -> Iterator[World | None]:
    """Leave ``world`` at the end; on an exception, first tell the other ranks (None: no run)."""
    if world is None:
        yield None
        return
    try:
        yield world
    except BaseException as e:
        world.fail(f"{type(e).__name__}: {e}")
        raise
    world.leave()
