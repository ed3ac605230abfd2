"""Shared fixtures: paths to the golden data and to ../shared (skipped cleanly where absent), and
the end-of-run summary of skips, one line per reason."""

from __future__ import annotations

import collections
import os
import pathlib
from typing import Any

import pytest
import torch

import recaffe  # noqa: F401  (registers every layer type)

TESTS = pathlib.Path(__file__).resolve().parent
GOLDEN = TESTS / "golden"
# ../shared next to the checkout (or next to the folder holding a worktree of it)
SHARED = next(
    (p / "shared" for p in (TESTS.parent.parent, TESTS.parent.parent.parent) if (p / "shared").is_dir()),
    TESTS.parent.parent / "shared",
)

torch.set_num_threads(max(1, torch.get_num_threads()))

# tests parse their prototxts afresh and leave nothing in the user's cache (tests/io/test_parse_cache.py
# turns the cache on in a temporary folder)
os.environ["RECAFFE_PROTOTXT_CACHE"] = "off"

# scripts/device_check.sh runs suites with RECAFFE_TEST_DEVICE=cuda: new nets then live on the GPU
if os.environ.get("RECAFFE_TEST_DEVICE", "cpu") == "cuda":
    recaffe.device.use_device([0])


def cuda_available() -> bool:
    return torch.cuda.is_available()


@pytest.fixture
def golden() -> pathlib.Path:
    return GOLDEN


@pytest.fixture
def caffe_models() -> pathlib.Path:
    path = SHARED / "caffe-models"
    if not path.is_dir():
        pytest.skip("../shared/caffe-models is not present")
    return path


def skip_reason(report: Any) -> str:
    """The reason a skipped test report gives (pytest keeps it as ``(file, line, 'Skipped: why')``)."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line per skip reason with its count: on a plain machine only environment skips
    (no CUDA, no plyvel, no Graphviz, no BVLC checkout) should appear."""
    reasons = collections.Counter(skip_reason(r) for r in terminalreporter.stats.get("skipped", []))
    if not reasons:
        return
    terminalreporter.section(f"{sum(reasons.values())} skipped, by reason", sep="-")
    for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
        terminalreporter.write_line(f"{count:5d}  {reason}")
