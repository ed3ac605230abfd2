"""The watchdog of a distributed run: notice a dead rank within the timeout, name it, and stop.

Each rank runs one thread with its own connection to the run's store. Every ``interval`` seconds
it bumps its heartbeat counter and looks at the others':

* a rank that reported a failure (``fail``: an exception it could not get past) is named with its
  message at once;
* a rank on this host whose process is gone (``kill -9``, a crash) is named at once;
* a rank whose heartbeat has not moved for ``timeout`` seconds (another host, a hung process) is
  named after that long;
* losing the store means its host is gone: rank 0, unless torchrun's agent hosts it.

Then it logs one FATAL line (``rank 1 ... is gone``) and ends this process with status 1
(Caffe's ``LOG(FATAL)``), whatever the main thread is blocked in. A rank that finished (``finish``)
is not watched any more. Snapshots are written before the next iteration starts, so a run stopped
this way keeps its last complete snapshot.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import threading
import time
from typing import NoReturn

import torch.distributed as dist

from recaffe.distributed.rendezvous import Rendezvous

log = logging.getLogger("recaffe.distributed")

EXIT_STATUS = 1


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (a zombie, dead but not reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


class Watchdog:
    """One rank's heartbeat and its watch over the other ranks (see the module docstring)."""

    def __init__(self, rank: int, size: int, rendezvous: Rendezvous, timeout: float) -> None:
        self.rank, self.size, self.timeout = rank, size, timeout
        self.interval = min(1.0, timeout / 5)
        self._rendezvous = rendezvous
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._places: dict[int, tuple[str, int]] = {}

    # ------------------------------------------------------------ the main thread's side
    def register(self, store: dist.Store) -> None:
        """Publish this rank's host and pid and its first heartbeat (before the group forms)."""
        store.set(f"place/{self.rank}", f"{socket.gethostname()} {os.getpid()}")
        store.add(f"beat/{self.rank}", 1)

    def start(self) -> None:
        """Open the watchdog's own store connection and start watching (after the group formed)."""
        r = self._rendezvous
        client = dist.TCPStore(r.host, r.port, is_master=False,
                               timeout=datetime.timedelta(seconds=max(self.timeout, 5.0)))
        store = dist.PrefixStore("recaffe", client)
        for other in self._others():
            host, _, pid = store.get(f"place/{other}").decode().partition(" ")
            self._places[other] = (host, int(pid))
        self._thread = threading.Thread(target=self._run, args=(store,), name="recaffe-watchdog",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def report_failure(self, store: dist.Store, message: str) -> None:
        try:
            store.set("failure", f"{self.rank}\t{message}")
            store.add("failures", 1)
        except Exception as e:  # the store may be what failed
            log.warning("rank %d could not tell the other ranks it failed: %s", self.rank, e)

    def finish(self, store: dist.Store) -> None:
        store.set(f"done/{self.rank}", "1")

    def all_done(self, store: dist.Store) -> bool:
        return bool(store.check([f"done/{r}" for r in range(self.size)]))

    def collective_failed(self, error: Exception) -> NoReturn:
        """A collective raised (a peer's connection closed): give the watchdog the timeout to name
        the rank that is gone, then stop with the collective's error."""
        deadline = time.monotonic() + self.timeout + 2 * self.interval
        while time.monotonic() < deadline and self._thread is not None and self._thread.is_alive():
            time.sleep(self.interval / 2)
        self._fatal(f"rank {self.rank}: a collective operation failed and no rank was found gone "
                    f"within {self.timeout:g} s: {error}")

    # ------------------------------------------------------------ the thread
    def _others(self) -> list[int]:
        return [r for r in range(self.size) if r != self.rank]

    def _run(self, store: dist.Store) -> None:
        seen = {r: (b"", time.monotonic()) for r in self._others()}
        host = socket.gethostname()
        while not self._stop.wait(self.interval):
            try:
                store.add(f"beat/{self.rank}", 1)
                if store.add("failures", 0):
                    who, _, message = store.get("failure").decode().partition("\t")
                    if int(who) != self.rank:
                        self._fatal(f"rank {who} failed: {message}; rank {self.rank} stops too")
                beats = store.multi_get([f"beat/{r}" for r in seen])
                now = time.monotonic()
                for (other, (last, since)), beat in zip(list(seen.items()), beats):
                    if beat != last:
                        seen[other] = (beat, now)
                    where, pid = self._places[other]
                    gone = where == host and not _alive(pid)
                    silent = now - since > self.timeout
                    if (gone or silent) and not store.check([f"done/{other}"]):
                        why = (f"its process {pid} on {where} is gone" if gone
                               else f"no heartbeat for {self.timeout:g} s")
                        self._fatal(f"rank {other} is gone ({why}); rank {self.rank} stops")
            except Exception as e:
                if self._stop.is_set():
                    return
                r = self._rendezvous
                owner = "torchrun's agent" if r.agent_hosts_store else "rank 0"
                self._fatal(f"rank {self.rank} lost the run's store at {r.host}:{r.port}: {owner}, which "
                            f"hosts it, is gone ({e})")

    def _fatal(self, message: str) -> NoReturn:
        log.critical("%s", message)
        for handler in logging.getLogger().handlers + logging.getLogger("recaffe").handlers:
            handler.flush()
        os._exit(EXIT_STATUS)
