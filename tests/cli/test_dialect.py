"""``--dialect`` on every command: a fork prototxt forced to BVLC fails listing its fork fields."""

from __future__ import annotations

from collections.abc import Callable

from tests.cli.conftest import Result
from tests.forks.test_dialects import FIXTURES

SSD = FIXTURES / "tiny_ssd.prototxt"


def test_time_runs_a_fork_net_detected_or_named(cli: Callable[..., Result]) -> None:
    for extra in ((), ("--dialect", "ssd"), ("-dialect=ssd",)):
        result = cli("time", "-model", SSD, "-iterations", "1", "-phase", "TEST", *extra)
        assert result.status == 0, result.err


def test_dialect_bvlc_lists_the_fork_fields(cli: Callable[..., Result]) -> None:
    result = cli("time", "-model", SSD, "-iterations", "1", "--dialect", "bvlc")
    assert result.status == 1
    assert "unknown fields/layer types for BVLC Caffe" in result.err
    assert "norm_param is from the SSD fork (weiliu89/caffe, branch ssd); use --dialect ssd" in result.err


def test_unknown_dialect_is_named(cli: Callable[..., Result]) -> None:
    result = cli("time", "-model", SSD, "--dialect", "yolo")
    assert result.status == 1 and "unknown dialect 'yolo'" in result.err
