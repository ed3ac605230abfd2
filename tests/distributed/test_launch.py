"""``train -gpu 0,1``'s launcher: each spawned rank gets torchrun's variables; a failed rank is named
(the runs that succeed are in test_training.py)."""

from __future__ import annotations

import logging
import os
import signal

import pytest

from recaffe.distributed import launch


def rank_1_is_killed() -> int:
    assert os.environ["WORLD_SIZE"] == "2" and os.environ["MASTER_ADDR"] == "127.0.0.1"
    assert os.environ["LOCAL_RANK"] == os.environ["RANK"] and int(os.environ["MASTER_PORT"]) > 0
    if os.environ["RANK"] == "1":
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # rank 0 decides for all
        os.kill(os.getpid(), signal.SIGKILL)
    return 0


def test_a_killed_rank_is_named(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="recaffe.distributed"):
        assert launch.spawn(rank_1_is_killed, 2) == 1
    fatal = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(fatal) == 1, fatal
    assert fatal[0].startswith("rank 1 (pid ") and fatal[0].endswith("was killed by SIGKILL")
