"""Where the ranks meet: NCCL-style uids, torchrun's environment, the fault timeout."""

from __future__ import annotations

import pytest

from recaffe.distributed import rendezvous
from recaffe.distributed.rendezvous import DistributedError, Rendezvous


def test_a_uid_names_the_rendezvous(monkeypatch) -> None:
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    uid = rendezvous.new_uid()
    place = Rendezvous.from_uid(uid)
    assert place.host == "127.0.0.1" and 0 < place.port < 65536 and not place.agent_hosts_store
    assert Rendezvous.from_uid(uid.decode()) == place
    assert rendezvous.new_uid() != uid
    monkeypatch.setenv("MASTER_ADDR", "node7")
    assert Rendezvous.from_uid(rendezvous.new_uid()).host == "node7"
    with pytest.raises(DistributedError, match="not a uid from NCCL.new_uid"):
        Rendezvous.from_uid(b"\x00" * 128)  # BVLC's ncclUniqueId bytes are not ours


def test_torchrun_environment(monkeypatch) -> None:
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert rendezvous.env_world() is None
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("MASTER_ADDR", "head")
    monkeypatch.setenv("MASTER_PORT", "29500")
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    want = rendezvous.EnvWorld(3, 4, 1, Rendezvous("head", 29500, agent_hosts_store=True))
    assert rendezvous.env_world() == want
    monkeypatch.setenv("MASTER_PORT", "x")
    with pytest.raises(DistributedError, match="MASTER_PORT='x'"):
        rendezvous.env_world()


@pytest.mark.parametrize(("value", "seconds"), [("", 60.0), ("2.5", 2.5)])
def test_fault_timeout(monkeypatch, value, seconds) -> None:
    monkeypatch.setenv(rendezvous.TIMEOUT_ENV, value)
    assert rendezvous.fault_timeout() == seconds


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_fault_timeout_must_be_positive(monkeypatch, value) -> None:
    monkeypatch.setenv(rendezvous.TIMEOUT_ENV, value)
    with pytest.raises(DistributedError, match="RECAFFE_DIST_TIMEOUT must be a positive number"):
        rendezvous.fault_timeout()
