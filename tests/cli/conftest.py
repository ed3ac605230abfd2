"""Helpers for the command-line tests: run ``main()`` in-process and read what it logged."""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import re
from collections.abc import Callable

import pytest

from recaffe.cli import main as cli_main
from tests.cli import nets

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "cli"
GLOG_LINE = re.compile(r"^([IWEF])(\d{4}) (\d\d:\d\d:\d\d\.\d{6}) +(\d+) ([\w.]+):(\d+)\] (.*)$")


class Result:
    """Exit status and stderr of one ``main()`` call; ``messages`` are the glog lines' texts."""

    def __init__(self, status: int, out: str, err: str) -> None:
        self.status, self.out, self.err = status, out, err
        self.messages = [m.group(7) for m in map(GLOG_LINE.match, err.splitlines()) if m]

    def fatal(self) -> str:
        lines = [line for line in self.err.splitlines() if line.startswith("F")]
        assert lines, self.err
        return GLOG_LINE.match(lines[-1]).group(7)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    def run(*argv: str) -> Result:
        capsys.readouterr()
        status = cli_main.main([str(a) for a in argv])
        captured = capsys.readouterr()
        return Result(status, captured.out, captured.err)

    return run


@pytest.fixture
def tiny_net() -> pathlib.Path:
    return FIXTURES / "tiny_net.prototxt"


@pytest.fixture(scope="module")
def train_log(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The stderr of ``recaffe train`` (12 iterations, display 2, tests every 4), as ``2>&1 | tee``
    would capture it."""
    root = tmp_path_factory.mktemp("train_log")
    nets.training_dir(root, max_iter=12, display=2, test_interval=4, snapshot=0)
    stderr = io.StringIO()
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stderr(stderr):
            assert cli_main.main(["train", "-solver", "solver.prototxt"]) == 0
    finally:
        os.chdir(cwd)
    path = root / "train.log"
    path.write_text(stderr.getvalue())
    return path
