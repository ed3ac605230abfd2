"""scripts/device_check.sh (the GPU machine's checks) passes its own dry run on the CPU."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
import torch

from tests.conftest import SHARED

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "device_check.sh"


def test_dry_run_passes_every_step_on_the_cpu(tmp_path) -> None:
    if not (SHARED / "caffe-models").is_dir():
        pytest.skip("../shared/caffe-models (the benchmark's prototxts) is not present")
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    done = subprocess.run(["bash", str(SCRIPT), "--dry-run"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    steps = [line.split(" (")[0] for line in done.stdout.splitlines() if line.startswith("== ")]
    assert steps[:3] == ["== device", "== golden layer and solver suites on cpu", "== 2-rank training"]
    assert steps[3].startswith(f"== scaling benchmark on cpu -> {tmp_path}")
    assert steps[4:] == ["== device_check passed"]
    assert "| 1 process × 1 thread | 4 |" in done.stdout
    assert "| CaffeNet (batch 256/GPU) | 61.0 M |" in done.stdout
    assert not list(tmp_path.glob("device_check_results.*"))  # the dry run cleans up after itself


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_refuses_to_run_without_a_gpu_unless_dry() -> None:
    done = subprocess.run(["bash", str(SCRIPT)], env={**os.environ, "PYTHON": sys.executable},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "PyTorch sees no CUDA device; run with --dry-run" in done.stderr
