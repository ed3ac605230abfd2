"""``caffe train --tensorboard DIR``: TensorBoard scalars from the solver's own log lines.

The solver's log is the interface, as it is for ``parse_log``: the same patterns pick out, at
each display and test, the smoothed loss (``train/smoothed_loss``), the learning rate
(``train/lr``), every train net output (``train/<name>``) and every test net output
(``test/<name>``, or ``test<k>/<name>`` for test net #k > 0), each at its iteration. It needs the
``tensorboard`` package (``pip install recaffe[tensorboard]``).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator

from recaffe import logs
from recaffe.cli import parse_log
from recaffe.cli.common import CliError

SOLVER_LOGGER = "recaffe.solver"
_SMOOTHED_LOSS = re.compile(r"^Iteration (\d+) \(.*\), loss = (\S+)")
_TESTING = re.compile(r"Testing net \(#(\d+)\)")


class ScalarHandler(logging.Handler):
    """Turns the solver's display and test lines into ``writer.add_scalar`` calls."""

    def __init__(self, writer: object) -> None:
        super().__init__(logging.INFO)
        self.writer = writer
        self.iteration = 0
        self.test_net = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            for tag, value in self.scalars(record.getMessage()):
                self.writer.add_scalar(tag, value, self.iteration)  # type: ignore[attr-defined]
        except Exception:  # logging must never raise
            self.handleError(record)

    def scalars(self, message: str) -> list[tuple[str, float]]:
        """The (tag, value) pairs one log message carries; tracks the current iteration."""
        match = parse_log.ITERATION.search(message)
        if match:
            self.iteration = int(match.group(1))
        match = _TESTING.search(message)
        if match:
            self.test_net = int(match.group(1))
        found = []
        if match := _SMOOTHED_LOSS.search(message):
            found.append(("train/smoothed_loss", float(match.group(2))))
        if match := parse_log.LEARNING_RATE.search(message):
            found.append(("train/lr", float(match.group(1))))
        if match := parse_log.TRAIN_OUTPUT.search(message):
            found.append((f"train/{match.group(2)}", float(match.group(3))))
        if match := parse_log.TEST_OUTPUT.search(message):
            prefix = f"test{self.test_net}" if self.test_net else "test"
            found.append((f"{prefix}/{match.group(2)}", float(match.group(3))))
        return found


@contextlib.contextmanager
def scalars_from_log(log_dir: str) -> Iterator[ScalarHandler]:
    """Write the solver's scalars to ``log_dir`` while the block runs."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise CliError(
            "--tensorboard needs the tensorboard package: pip install recaffe[tensorboard]") from None
    writer = SummaryWriter(log_dir)
    handler = ScalarHandler(writer)
    try:
        with logs.listening(SOLVER_LOGGER, handler):
            yield handler
    finally:
        writer.close()
