"""Shared fixtures: paths to the golden data and to ../shared (skipped cleanly where absent)."""

from __future__ import annotations

import os
import pathlib

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
