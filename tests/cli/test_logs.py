"""recaffe.logs: glog's classic prefix, stderr, GLOG_* variables, log files, progress bars."""

from __future__ import annotations

import datetime
import io
import logging
import os
import sys
import threading

import pytest

from recaffe import logs
from tests.cli.conftest import GLOG_LINE


@pytest.fixture
def logger() -> logging.Logger:
    yield logging.getLogger("recaffe.test_logs")
    logs.setup_logging(logger="recaffe.test_logs", stream=io.StringIO())  # drop any file handler


def test_prefix_is_glogs_classic_form(logger: logging.Logger) -> None:
    stream = io.StringIO()
    logs.setup_logging(logging.INFO, stream, logger=logger.name)
    before = datetime.datetime.now().replace(microsecond=0)
    logger.info("Iteration %d, lr = %g", 100, 0.01)
    line = stream.getvalue().rstrip("\n")
    match = GLOG_LINE.match(line)
    assert match, line
    letter, mmdd, hms, tid, filename, lineno, message = match.groups()
    assert (letter, filename, message) == ("I", "test_logs.py", "Iteration 100, lr = 0.01")
    assert int(tid) == threading.get_native_id()
    assert mmdd == before.strftime("%m%d")
    stamp = datetime.datetime.strptime(f"{before.year}{mmdd} {hms}", "%Y%m%d %H:%M:%S.%f")
    assert abs((stamp - before).total_seconds()) < 5
    # BVLC's extract_seconds.py splits on whitespace: month, day and time from the first two fields
    first, second = line.split()[:2]
    assert len(first) == 5 and first[1:].isdigit() and len(second.split(".")[1]) == 6


@pytest.mark.parametrize(("level", "letter"), [(logging.DEBUG, "I"), (logging.INFO, "I"),
                                               (logging.WARNING, "W"), (logging.ERROR, "E"),
                                               (logging.CRITICAL, "F")])
def test_severity_letters(logger: logging.Logger, level: int, letter: str) -> None:
    stream = io.StringIO()
    logs.setup_logging(logging.DEBUG, stream, logger=logger.name)
    logger.log(level, "x")
    assert stream.getvalue()[0] == letter


def test_multiline_message_keeps_the_prefix_on_its_first_line_only(logger: logging.Logger) -> None:
    stream = io.StringIO()
    logs.setup_logging(logging.INFO, stream, logger=logger.name)
    logger.info("Initializing solver from parameters: \nbase_lr: 0.01\nlr_policy: \"fixed\"")
    lines = stream.getvalue().splitlines()
    assert GLOG_LINE.match(lines[0]) and lines[1:] == ["base_lr: 0.01", 'lr_policy: "fixed"']


def test_default_stream_is_the_current_stderr(logger: logging.Logger, monkeypatch) -> None:
    logs.setup_logging(logging.INFO, logger=logger.name)
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logger.info("one")
    monkeypatch.setattr(sys, "stderr", second)
    logger.info("two")
    assert first.getvalue().endswith("] one\n") and second.getvalue().endswith("] two\n")


def test_setup_replaces_its_own_handlers_only(logger: logging.Logger) -> None:
    other = logging.NullHandler()
    logger.addHandler(other)
    try:
        logs.setup_logging(logging.INFO, io.StringIO(), logger=logger.name)
        logs.setup_logging(logging.INFO, io.StringIO(), logger=logger.name)
        # (pytest may attach its own capture handlers to a non-propagating logger: not counted)
        ours = [h for h in logger.handlers if getattr(h, "_recaffe_glog", False)]
        assert len(ours) == 1 and other in logger.handlers
    finally:
        logger.removeHandler(other)


@pytest.mark.parametrize(("value", "level"), [("", logging.INFO), ("0", logging.INFO), ("1", logging.WARNING),
                                              ("2", logging.ERROR), ("3", logging.CRITICAL),
                                              ("7", logging.CRITICAL), ("x", logging.INFO),
                                              (" 1", logging.WARNING), ("2\n", logging.ERROR)])
def test_glog_minloglevel(monkeypatch: pytest.MonkeyPatch, value: str, level: int) -> None:
    monkeypatch.setenv("GLOG_minloglevel", value)
    assert logs.default_level() == level


def test_threshold_filters_records(logger: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLOG_minloglevel", "1")
    stream = io.StringIO()
    logs.setup_logging(stream=stream, logger=logger.name)
    logger.info("hidden")
    logger.warning("shown")
    assert "hidden" not in stream.getvalue() and "] shown" in stream.getvalue()


def test_log_dir_writes_a_glog_named_file_and_link(logger: logging.Logger, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GLOG_log_dir", str(tmp_path))
    logs.setup_logging(logging.INFO, io.StringIO(), logger=logger.name, program="caffe")
    logger.info("Solving tiny")
    link = tmp_path / "caffe.INFO"
    assert link.is_symlink()
    name = os.readlink(link)
    assert name.startswith("caffe.") and f".log.INFO.{datetime.date.today():%Y%m%d}-" in name
    assert name.endswith(f".{os.getpid()}")
    lines = link.read_text().splitlines()
    assert lines[0].startswith("Log file created at: ")
    assert lines[2] == "Log line format: [IWEF]mmdd hh:mm:ss.uuuuuu threadid file:line] msg"
    assert GLOG_LINE.match(lines[3]).group(7) == "Solving tiny"


def test_progress_bar_prints_log_lines_above_the_bar(logger: logging.Logger, monkeypatch) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    logs.setup_logging(logging.INFO, logger=logger.name)
    with logs.progress_bar(10, "train") as bar:
        bar.update(3)
        logger.info("Iteration 3, lr = 0.1")
        bar.update(1)
    text = stderr.getvalue()
    # the log line is a whole line of its own, not spliced into a bar redraw
    lines = [part for chunk in text.split("\r") for part in chunk.split("\n")]
    assert any(GLOG_LINE.match(line) and line.endswith("Iteration 3, lr = 0.1") for line in lines)
    assert "4/10" in text


def test_progress_bar_disabled_yields_none() -> None:
    with logs.progress_bar(10, "train", enabled=False) as bar:
        assert bar is None


def test_wants_progress_bar() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert logs.wants_progress_bar("auto", Tty()) and not logs.wants_progress_bar("auto", io.StringIO())
    assert logs.wants_progress_bar("on", io.StringIO()) and not logs.wants_progress_bar("off", Tty())
