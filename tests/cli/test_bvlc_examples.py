"""BVLC's example scripts with ``caffe`` replaced by ours: ``examples/mnist/train_lenet.sh`` runs
``./build/tools/caffe train --solver=examples/mnist/lenet_solver.prototxt`` from a Caffe root.

The example files are read from a BVLC Caffe tree (see ``tests/cli/bvlc.py``; skipped without
one) into a temporary root, with the solver shortened to a few iterations. The data are synthetic
MNIST idx files converted by ``recaffe convert_mnist`` (as ``create_mnist.sh`` does with
``convert_mnist_data``). ``build/tools/caffe`` there runs ``recaffe.cli.main``.
"""

from __future__ import annotations

import os
import pathlib
import re
import stat
import subprocess
import sys

import numpy as np
import pytest

from recaffe.cli import main as cli_main
from tests.cli import bvlc

REPO = pathlib.Path(__file__).resolve().parents[2]
SHORTER = {"test_iter": "1", "test_interval": "2", "display": "1", "max_iter": "4", "snapshot": "2"}


def convert_mnist_like(folder: pathlib.Path, name: str, num: int, seed: int) -> None:
    """Random 28x28 digits with labels 0-9 as MNIST idx files, converted to ``<name>_lmdb``."""
    rng = np.random.default_rng(seed)
    images, labels = folder / f"{name}-images-idx3-ubyte", folder / f"{name}-labels-idx1-ubyte"
    images.write_bytes(np.array([2051, num, 28, 28], ">u4").tobytes()
                       + rng.integers(0, 256, size=num * 28 * 28, dtype=np.uint8).tobytes())
    digits = (np.arange(num) % 10).astype(np.uint8)
    labels.write_bytes(np.array([2049, num], ">u4").tobytes() + digits.tobytes())
    assert cli_main.main(["convert_mnist", str(images), str(labels), str(folder / f"mnist_{name}_lmdb"),
                          "--backend=lmdb"]) == 0


@pytest.mark.slow
def test_train_lenet_sh(tmp_path: pathlib.Path) -> None:
    script = bvlc.caffe_file("examples/mnist/train_lenet.sh")
    solver = bvlc.caffe_file("examples/mnist/lenet_solver.prototxt")
    net = bvlc.caffe_file("examples/mnist/lenet_train_test.prototxt")
    mnist = tmp_path / "examples/mnist"
    mnist.mkdir(parents=True)
    for field, value in SHORTER.items():
        solver = re.sub(rf"^{field}: .*$", f"{field}: {value}", solver, flags=re.MULTILINE)
    (mnist / "lenet_solver.prototxt").write_text(solver)
    (mnist / "lenet_train_test.prototxt").write_text(net)
    (mnist / "train_lenet.sh").write_text(script)
    convert_mnist_like(mnist, "train", 128, seed=1)
    convert_mnist_like(mnist, "test", 100, seed=2)
    caffe = tmp_path / "build/tools/caffe"
    caffe.parent.mkdir(parents=True)
    caffe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m recaffe.cli.main "$@"\n')
    caffe.chmod(caffe.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(["sh", "examples/mnist/train_lenet.sh"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stderr
    no_cuda = "The solver asks for solver_mode: GPU but PyTorch sees no CUDA device."
    assert no_cuda in log or "Using GPUs 0" in log
    assert "] Solving LeNet" in log and log.rstrip().endswith("] Optimization Done.")
    assert len(re.findall(r"\] Iteration \d+ \(", log)) == 4
    for it in (2, 4):
        assert (mnist / f"lenet_iter_{it}.caffemodel").is_file()
        assert (mnist / f"lenet_iter_{it}.solverstate").is_file()
