"""Where the ranks of a run meet, and how long they wait for each other.

* ``Rendezvous``: the address of the run's store (``TCPStore``), hosted by rank 0 or by torchrun's
  agent; pycaffe's uids (``new_uid()``, ``caffe.NCCL.new_uid()``) name one;
* ``env_world()``: the rank, world size and rendezvous of a torchrun-style environment (``RANK``,
  ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``);
* ``fault_timeout()``: ``RECAFFE_DIST_TIMEOUT`` seconds (default 60), the bound on noticing a rank
  that stopped answering.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import uuid

TIMEOUT_ENV = "RECAFFE_DIST_TIMEOUT"
DEFAULT_TIMEOUT = 60.0
_UID_PREFIX = "recaffe-rendezvous://"


class DistributedError(RuntimeError):
    """A distributed run cannot be set up as asked (bad uid, environment or rank)."""


def fault_timeout() -> float:
    """``RECAFFE_DIST_TIMEOUT`` in seconds (default 60): the bound on noticing a dead rank."""
    value = os.environ.get(TIMEOUT_ENV, "").strip()
    if not value:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise DistributedError(f"{TIMEOUT_ENV} must be a positive number of seconds, got {value!r}")
    return seconds


@dataclasses.dataclass(frozen=True)
class Rendezvous:
    """Where the ranks meet: the store's address, and whether torchrun's agent already hosts it."""

    host: str
    port: int
    agent_hosts_store: bool = False

    def uid(self) -> bytes:
        return f"{_UID_PREFIX}{self.host}:{self.port}/{uuid.uuid4().hex}".encode()

    @classmethod
    def from_uid(cls, uid: bytes | str) -> Rendezvous:
        text = uid.decode(errors="replace") if isinstance(uid, bytes) else str(uid)
        address = text[len(_UID_PREFIX):].split("/", 1)[0] if text.startswith(_UID_PREFIX) else ""
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise DistributedError(f"not a uid from NCCL.new_uid(): {text[:80]!r}")
        return cls(host, int(port))


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def new_uid() -> bytes:
    """A rendezvous for a new run: ``MASTER_ADDR`` (default 127.0.0.1) and a free port."""
    host = os.environ.get("MASTER_ADDR", "127.0.0.1")
    return Rendezvous(host, free_port()).uid()


@dataclasses.dataclass(frozen=True)
class EnvWorld:
    """The torchrun-style environment of this process: its rank, the world size, where to meet."""

    rank: int
    size: int
    local_rank: int
    rendezvous: Rendezvous


def env_world() -> EnvWorld | None:
    """The world ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT`` describe;
    None when ``WORLD_SIZE`` is unset (not under a launcher)."""
    env = os.environ
    if "WORLD_SIZE" not in env:
        return None
    try:
        size, rank = int(env["WORLD_SIZE"]), int(env.get("RANK", "0"))
        local_rank = int(env.get("LOCAL_RANK", str(rank)))
        port = int(env.get("MASTER_PORT", ""))
    except ValueError:
        raise DistributedError(
            "WORLD_SIZE, RANK, LOCAL_RANK and MASTER_PORT must be integers (as torchrun sets them), got "
            + ", ".join(f"{k}={env.get(k)!r}" for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_PORT"))
        ) from None
    if not 0 <= rank < size:
        raise DistributedError(f"RANK={rank} is outside WORLD_SIZE={size}")
    agent = env.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
    return EnvWorld(rank, size, local_rank, Rendezvous(env.get("MASTER_ADDR", "127.0.0.1"), port, agent))
