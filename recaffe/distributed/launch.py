"""Spawning the ranks of a one-machine run (``recaffe train -gpu 0,1``) as torchrun would.

``spawn(target, nprocs)`` starts ``nprocs`` fresh processes (``torch.multiprocessing``, "spawn"),
each with the torchrun environment of its rank (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR=127.0.0.1``, a free ``MASTER_PORT``), and runs ``target()`` in each; so a spawned
rank joins its run exactly as a torchrun rank does. While they run, SIGINT and SIGHUP sent to
this process are passed to rank 0 (the others ignore them: rank 0 decides for all). Returns 0
when every rank ends with status 0; otherwise logs which rank failed first and returns 1.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import types
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess

import torch.multiprocessing as mp

from recaffe.distributed.rendezvous import fault_timeout, free_port

log = logging.getLogger("recaffe.distributed")

FORWARDED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGHUP") if hasattr(signal, name))


def spawn(target: Callable[[], int], nprocs: int) -> int:
    port = free_port()
    context = mp.get_context("spawn")
    processes = []
    for rank in range(nprocs):
        env = {"RANK": rank, "LOCAL_RANK": rank, "WORLD_SIZE": nprocs, "LOCAL_WORLD_SIZE": nprocs,
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
        process = context.Process(target=_run_rank, args=(target, {k: str(v) for k, v in env.items()}),
                                  name=f"recaffe-rank-{rank}")
        process.start()
        processes.append(process)
    log.info("Started %d ranks (pids %s)", nprocs, " ".join(str(p.pid) for p in processes))

    def forward(signum: int, frame: types.FrameType | None) -> None:
        if processes[0].is_alive() and processes[0].pid is not None:
            os.kill(processes[0].pid, signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}
    try:
        return _wait(processes)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _wait(processes: Sequence[BaseProcess]) -> int:
    """Wait for every rank; after the first failure, give the others the fault timeout (plus a
    margin) to stop by themselves, then terminate them."""
    failed: tuple[int, int] | None = None
    deadline = float("inf")
    while any(p.is_alive() for p in processes):
        for rank, p in enumerate(processes):
            if failed is None and p.exitcode not in (None, 0):
                failed = (rank, p.exitcode)
                deadline = time.monotonic() + fault_timeout() + 5
        if time.monotonic() > deadline:
            for p in processes:
                if p.is_alive():
                    p.terminate()
        processes[0].join(0.1)
    for p in processes:
        p.join()
    if failed is None:
        failed = next(((r, p.exitcode) for r, p in enumerate(processes) if p.exitcode), None)
    if failed is None:
        return 0
    rank, status = failed
    how = (f"was killed by {signal.Signals(-status).name}" if status < 0 else f"exited with status {status}")
    log.critical("rank %d (pid %d) %s", rank, processes[rank].pid, how)
    return 1


def _run_rank(target: Callable[[], int], env: dict[str, str]) -> None:
    os.environ.update(env)
    if env["RANK"] != "0":
        for signum in FORWARDED_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
    sys.exit(target())
