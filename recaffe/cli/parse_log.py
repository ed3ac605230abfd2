"""``caffe parse_log LOGFILE OUTPUT_DIR``: a training log as two CSV tables, as BVLC's
``tools/extra/parse_log.py`` writes them.

``<log>.train`` gets one row per display iteration and ``<log>.test`` one per test pass, with the
columns ``NumIters, Seconds, LearningRate`` and then each net output by name. Seconds count from
the ``Solving ...`` line; glog's prefix has no year, so it comes from the log file's ctime and
rolls over when the month goes backwards. The rows are built by the same rules as BVLC's script,
so the files match its output, with three differences: a log with a single row still writes it,
outputs printed as ``nan``/``inf`` are read, and lines without a glog prefix (empty ones too)
are skipped instead of stopping the parse. Both the classic prefix and glog 0.6's year form
(``I20261123``) are read.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import logging
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from recaffe.cli.common import CliError
from recaffe.io import atomic

log = logging.getLogger(__name__)

ITERATION = re.compile(r"Iteration (\d+)")
_NUMBER = r"([-+]?(?:nan|inf|[.\deE+-]+))"
TRAIN_OUTPUT = re.compile(r"Train net output #(\d+): (\S+) = " + _NUMBER)
TEST_OUTPUT = re.compile(r"Test net output #(\d+): (\S+) = " + _NUMBER)
LEARNING_RATE = re.compile(r"lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)")
_PREFIX = re.compile(r"^[IWEF](?:\d{4})?(\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6})\s")

Row = dict[str, float]


def line_time(line: str, year: int) -> datetime.datetime | None:
    """The timestamp of a glog-prefixed line in ``year``; None for a line without a prefix."""
    match = _PREFIX.match(line)
    if match is None:
        return None
    month, day, hour, minute, second, micro = (int(g) for g in match.groups())
    try:
        return datetime.datetime(year, month, day, hour, minute, second, micro)
    except ValueError:
        return None


@dataclass
class _Table:
    """Rows of one kind (train or test), grouped the way BVLC's parser groups them: a row is
    complete once it has as many columns as the first row."""

    rows: list[Row] = field(default_factory=list)
    pending: Row | None = None

    def add(self, iteration: float, seconds: float, rate: float, name: str, value: float) -> None:
        if self.pending is None or self.pending["NumIters"] != iteration:
            if self.pending is not None:
                self.rows.append(self.pending)
            self.pending = {"NumIters": iteration, "Seconds": seconds, "LearningRate": rate}
        self.pending[name] = value

    def push_if_full(self) -> None:
        if self.pending is not None and self.rows and len(self.pending) == len(self.rows[0]):
            self.rows.append(self.pending)
            self.pending = None

    def finish(self) -> list[Row]:
        if self.pending is not None and not self.rows:
            self.rows.append(self.pending)  # a lone first row (BVLC's script drops it)
        self.pending = None
        if len(self.rows) > 1:
            self.rows[0]["LearningRate"] = self.rows[1]["LearningRate"]
        return self.rows


def parse_lines(lines: Iterable[str], year: int) -> tuple[list[Row], list[Row]]:
    """(train rows, test rows) of a log's lines; ``year`` is the year of its first line."""
    lines = iter(lines)
    start = None
    for line in lines:
        if "Solving" in line:
            start = line_time(line, year)
            break
    if start is None:
        raise ValueError("no timestamped 'Solving ...' line: this is not a log of 'caffe train'")
    iteration, rate, last = -1.0, math.nan, start
    train, test = _Table(), _Table()
    for line in lines:
        match = ITERATION.search(line)
        if match:
            iteration = float(match.group(1))
        if iteration == -1:
            continue
        when = line_time(line, year)
        if when is None:
            continue
        if when.month < last.month:
            year += 1
            when = when.replace(year=year)
        last = when
        seconds = (when - start).total_seconds()
        match = LEARNING_RATE.search(line)
        if match:
            rate = float(match.group(1))
        for regex, table in ((TRAIN_OUTPUT, train), (TEST_OUTPUT, test)):
            match = regex.search(line)
            if match:
                table.add(iteration, seconds, rate, match.group(2), float(match.group(3)))
            table.push_if_full()
    return train.finish(), test.finish()


def parse_log(path: str | os.PathLike[str]) -> tuple[list[Row], list[Row]]:
    """(train rows, test rows) of a log file."""
    year = datetime.datetime.fromtimestamp(os.path.getctime(path)).year
    with open(path, encoding="utf-8", errors="replace") as f:
        try:
            return parse_lines(f, year)
        except ValueError as e:
            raise ValueError(f"{os.fspath(path)}: {e}") from None


def write_csv(path: str, rows: list[Row], delimiter: str = ",", verbose: bool = False) -> None:
    """Write ``rows`` with the first row's columns (Excel dialect); nothing when there are none."""
    if not rows:
        if verbose:
            print(f"Not writing {path}; no lines to write")
        return
    with atomic.replace(path, "CSV file") as temp, open(temp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), dialect=csv.excel, delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    if verbose:
        print(f"Wrote {path}")


def save_csv_files(log_path: str, output_dir: str, train: list[Row], test: list[Row],
                   delimiter: str = ",", verbose: bool = False) -> tuple[str, str]:
    """Write ``<output_dir>/<log name>.train`` and ``.test`` (creating ``output_dir``); returns both paths."""
    os.makedirs(output_dir, exist_ok=True)
    base = os.path.join(output_dir, os.path.basename(log_path))
    write_csv(base + ".train", train, delimiter, verbose)
    write_csv(base + ".test", test, delimiter, verbose)
    return base + ".train", base + ".test"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "parse_log", help="parse a training log into CSV files (.train and .test)",
        description="Parse a Caffe training log into two CSV files containing training and testing "
                    "information, as tools/extra/parse_log.py does.")
    parser.add_argument("logfile_path", help="path to the log file")
    parser.add_argument("output_dir", help="directory in which to place the output CSV files")
    parser.add_argument("--verbose", action="store_true", help="print the names of the files written")
    parser.add_argument("--delimiter", default=",", help="column delimiter (default: ',')")
    parser.set_defaults(run=run)


def read_log(path: str) -> tuple[list[Row], list[Row]]:
    """``parse_log`` for the commands: an unreadable or unfit log is a ``CliError``."""
    try:
        return parse_log(path)
    except OSError as e:
        raise CliError(f"cannot read {path!r}: {e.strerror}") from None
    except ValueError as e:
        raise CliError(str(e)) from None


def run(args: argparse.Namespace) -> int:
    train, test = read_log(args.logfile_path)
    save_csv_files(args.logfile_path, args.output_dir, train, test, args.delimiter, args.verbose)
    return 0
