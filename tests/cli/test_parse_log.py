"""``caffe parse_log``: a log from ``recaffe train`` read by BVLC's own scripts and by ours."""

from __future__ import annotations

import csv
import datetime
import math
import pathlib

import pytest

from recaffe.cli import parse_log
from tests.cli import bvlc


def read_csv(path: pathlib.Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_csv_columns_and_rows(cli, train_log: pathlib.Path, tmp_path: pathlib.Path) -> None:
    result = cli("parse_log", train_log, tmp_path, "--verbose")
    assert result.status == 0, result.err
    assert f"Wrote {tmp_path / 'train.log.train'}" in result.out
    train = read_csv(tmp_path / "train.log.train")
    test = read_csv(tmp_path / "train.log.test")
    assert train[0] == ["NumIters", "Seconds", "LearningRate", "loss"]
    assert test[0] == ["NumIters", "Seconds", "LearningRate", "accuracy", "loss"]
    assert [row[0] for row in train[1:]] == [f"{i}.0" for i in (0, 2, 4, 6, 8, 10)]
    assert [row[0] for row in test[1:]] == [f"{i}.0" for i in (0, 4, 8, 12)]
    # step 6, gamma 0.5; a row holds the rate logged before it (the previous display's)
    assert [float(row[2]) for row in train[1:]] == [0.05] * 4 + [0.025] * 2
    seconds = [float(row[1]) for row in train[1:]]
    assert seconds == sorted(seconds) and seconds[0] >= 0


def test_a_missing_output_dir_is_created(cli, train_log: pathlib.Path, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "not" / "there"
    assert cli("parse_log", train_log, out).status == 0
    assert read_csv(out / "train.log.train")[0][0] == "NumIters"


def test_matches_bvlc_parse_log(cli, train_log: pathlib.Path, tmp_path: pathlib.Path) -> None:
    for folder in ("bvlc", "ours", "theirs"):
        (tmp_path / folder).mkdir()
    scripts = bvlc.install_scripts(tmp_path / "bvlc")
    assert cli("parse_log", train_log, tmp_path / "ours").status == 0
    bvlc.run_script(scripts, "parse_log.py", train_log, tmp_path / "theirs")
    for suffix in (".train", ".test"):
        ours = (tmp_path / "ours" / f"train.log{suffix}").read_bytes()
        theirs = (tmp_path / "theirs" / f"train.log{suffix}").read_bytes()
        assert ours == theirs, suffix
        assert ours.count(b"\r\n") > 3


def test_bvlc_extract_seconds_reads_our_log(train_log: pathlib.Path, tmp_path: pathlib.Path) -> None:
    scripts = bvlc.install_scripts(tmp_path)
    bvlc.run_script(scripts, "extract_seconds.py", train_log, tmp_path / "seconds.txt")
    theirs = [float(x) for x in (tmp_path / "seconds.txt").read_text().split()]
    lines = train_log.read_text().splitlines()
    year = datetime.date.today().year
    start = parse_log.line_time(next(line for line in lines if "Solving" in line), year)
    ours = [(parse_log.line_time(line, year) - start).total_seconds()
            for line in lines if "Iteration" in line]
    assert len(theirs) == len(ours) > 10
    assert theirs == pytest.approx(ours, abs=1e-6) and theirs == sorted(theirs)


LOG = """\
Log file created at: 2024/12/31 23:59:58
I1231 23:59:58.000000 100 solver.py:1] Initializing solver from parameters: 
base_lr: 0.01

I1231 23:59:59.000000 100 solver.py:2] Solving demo
I1231 23:59:59.500000 100 solver.py:3] Iteration 0, Testing net (#0)
I1231 23:59:59.600000 100 solver.py:4]     Test net output #0: accuracy = 0.5
I1231 23:59:59.600000 100 solver.py:4]     Test net output #1: loss = nan (* 1 = nan loss)

some unprefixed line mentioning Iteration 99
I0101 00:00:01.000000 100 solver.py:5] Iteration 0 (0 iter/s, 0.1s/10 iters), loss = 0.7
I0101 00:00:01.000000 100 solver.py:6]     Train net output #0: loss = 0.7 (* 1 = 0.7 loss)
I0101 00:00:01.000000 100 solver.py:7] Iteration 0, lr = 0.01
I0101 00:00:02.250000 100 solver.py:5] Iteration 10 (8 iter/s, 1.25s/10 iters), loss = 0.5
I0101 00:00:02.250000 100 solver.py:6]     Train net output #0: loss = 0.5 (* 1 = 0.5 loss)
I0101 00:00:02.250000 100 solver.py:7] Iteration 10, lr = 0.001
I0101 00:00:03.000000 100 solver.py:3] Iteration 20, Testing net (#0)
I0101 00:00:03.000000 100 solver.py:4]     Test net output #0: accuracy = 0.75
"""


def test_rows_seconds_and_year_rollover() -> None:
    train, test = parse_log.parse_lines(LOG.splitlines(True), 2024)
    # a row gets the rate logged before it (the previous display's); the first row's NaN is
    # replaced by the second row's rate
    assert train == [
        {"NumIters": 0.0, "Seconds": 2.0, "LearningRate": 0.01, "loss": 0.7},
        {"NumIters": 10.0, "Seconds": 3.25, "LearningRate": 0.01, "loss": 0.5},
    ]
    # the last test row is incomplete (no loss): dropped, as BVLC's script does
    assert len(test) == 1 and test[0]["accuracy"] == 0.5 and math.isnan(test[0]["loss"])
    assert test[0]["Seconds"] == 0.6 and math.isnan(test[0]["LearningRate"])


def test_a_single_row_is_kept() -> None:
    lines = LOG.splitlines(True)[:13]
    assert lines[-1].endswith("Iteration 0, lr = 0.01\n")
    (row,), _ = parse_log.parse_lines(lines, 2024)
    assert (row["NumIters"], row["Seconds"], row["loss"]) == (0.0, 2.0, 0.7)
    assert math.isnan(row["LearningRate"])


def test_glog_year_prefix_is_read() -> None:
    lines = [
        "I20240301 10:00:00.000000 1 solver.py:1] Solving demo\n",
        "I20240301 10:00:05.000000 1 solver.py:1] Iteration 0 (0 iter/s, 0s/1 iters), loss = 1\n",
        "I20240301 10:00:05.000000 1 solver.py:1]     Train net output #0: loss = 1\n",
    ]
    (row,), _ = parse_log.parse_lines(lines, 2024)
    assert (row["NumIters"], row["Seconds"], row["loss"]) == (0.0, 5.0, 1.0)


def test_not_a_training_log(cli, tmp_path: pathlib.Path) -> None:
    log = tmp_path / "test.log"
    log.write_text("I0101 00:00:00.000000 1 score.py:1] Loss: 0.5\n")
    result = cli("parse_log", log, tmp_path)
    assert result.status == 1 and "no timestamped 'Solving ...' line" in result.fatal()
    assert cli("parse_log", tmp_path / "missing.log", tmp_path).status == 1


def test_delimiter(cli, train_log: pathlib.Path, tmp_path: pathlib.Path) -> None:
    assert cli("parse_log", train_log, tmp_path, "--delimiter", ";").status == 0
    header = (tmp_path / "train.log.test").read_text().splitlines()[0]
    assert header == "NumIters;Seconds;LearningRate;accuracy;loss"
