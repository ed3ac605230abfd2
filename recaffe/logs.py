"""glog-style logging for Python's ``logging``: Caffe's line prefix, on stderr, optionally to a file.

Every line starts with glog's classic prefix, the one BVLC's ``tools/extra/parse_log.py`` and
``extract_seconds.py`` read::

    I1123 09:00:16.350399 24676 solver.py:347] Iteration 100, lr = 0.01

(severity letter, MMDD, wall time with microseconds, thread id, file:line, ``] ``). glog 0.6 and
later put the year in front of the month (``I20261123``), which those scripts cannot parse, so the
classic form is written. A message spanning several lines keeps the prefix on its first line only,
as glog does.

Like the ``caffe`` tool, INFO and above go to stderr (capture a log with ``2>&1 | tee log``).
``GLOG_minloglevel`` (0 INFO, 1 WARNING, 2 ERROR, 3 FATAL) sets the default threshold, and a
``log_dir`` (or ``GLOG_log_dir``) also writes glog-named files there with a ``<program>.INFO``
link to the newest one.

While a progress bar from ``progress_bar`` is on the terminal, log lines are printed through
``tqdm.write`` so the bar is cleared, the line printed, and the bar redrawn below it.
"""

from __future__ import annotations

import contextlib
import datetime
import getpass
import logging
import os
import socket
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any

# glog's severities, most severe first; anything below WARNING (DEBUG too) is an I line
_LETTERS = ((logging.CRITICAL, "F"), (logging.ERROR, "E"), (logging.WARNING, "W"))
_GLOG_LEVELS = [logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]
LINE_FORMAT = "[IWEF]mmdd hh:mm:ss.uuuuuu threadid file:line] msg"

_active_bars: list[Any] = []


def severity_letter(levelno: int) -> str:
    """glog's letter for a ``logging`` level: DEBUG and INFO are I, then W, E, F (CRITICAL)."""
    return next((letter for level, letter in _LETTERS if levelno >= level), "I")


class GlogFormatter(logging.Formatter):
    """Formats a record as ``I1123 09:00:16.350399 24676 file.py:12] message``."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.datetime.fromtimestamp(record.created)
        # the handler runs in the logging thread, so this is the thread that logged
        prefix = (f"{severity_letter(record.levelno)}{when:%m%d %H:%M:%S}.{when.microsecond:06d} "
                  f"{threading.get_native_id():5d} {record.filename}:{record.lineno}] ")
        text = prefix + record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (tests and tools swap it);
    through ``tqdm.write`` while a progress bar is shown."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        if not _active_bars:
            super().emit(record)
            return
        try:
            _active_bars[-1].write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never raise
            self.handleError(record)


def default_level() -> int:
    """The threshold ``GLOG_minloglevel`` asks for (INFO when unset or not a number)."""
    value = os.environ.get("GLOG_minloglevel", "0").strip()  # noqa: SIM112  (glog's own name)
    index = int(value) if value.isdigit() else 0
    return _GLOG_LEVELS[min(index, len(_GLOG_LEVELS) - 1)]


def setup_logging(
    level: int | str | None = None,
    stream: IO[str] | None = None,
    *,
    logger: str = "recaffe",
    log_dir: str | os.PathLike[str] | None = None,
    program: str = "caffe",
) -> logging.Logger:
    """Send ``logger``'s records (``""`` = every logger) through glog's format.

    ``stream`` defaults to the current ``sys.stderr``. Calling it again replaces the handlers it
    installed before, so it is safe to call once per command. ``log_dir`` (default
    ``GLOG_log_dir``) also writes a glog-named log file there.
    """
    target = logging.getLogger(logger)
    for handler in [h for h in target.handlers if getattr(h, "_recaffe_glog", False)]:
        target.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = [StderrHandler() if stream is None else logging.StreamHandler(stream)]
    log_dir = log_dir if log_dir is not None else os.environ.get("GLOG_log_dir") or None  # noqa: SIM112
    if log_dir is not None:
        handlers.append(_file_handler(os.fspath(log_dir), program))
    threshold = default_level() if level is None else level
    for handler in handlers:
        handler.setFormatter(GlogFormatter())
        # the handlers hold the threshold too: records let through by a more verbose child
        # logger (the TensorBoard writer listens to the solver at INFO) stay off the console
        handler.setLevel(threshold)
        handler._recaffe_glog = True  # type: ignore[attr-defined]
        target.addHandler(handler)
    target.setLevel(threshold)
    if logger:
        target.propagate = False
    return target


def _file_handler(log_dir: str, program: str) -> logging.FileHandler:
    """``<program>.<host>.<user>.log.INFO.<yyyymmdd-hhmmss>.<pid>`` with glog's header, and the
    ``<program>.INFO`` symlink pointing at it."""
    now = datetime.datetime.now()
    name = (f"{program}.{socket.gethostname()}.{_user()}.log.INFO."
            f"{now:%Y%m%d-%H%M%S}.{os.getpid()}")
    path = os.path.join(log_dir, name)
    os.makedirs(log_dir, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"Log file created at: {now:%Y/%m/%d %H:%M:%S}\n"
                f"Running on machine: {socket.gethostname()}\n"
                f"Log line format: {LINE_FORMAT}\n")
    link = os.path.join(log_dir, f"{program}.INFO")
    with contextlib.suppress(OSError):
        if os.path.islink(link):
            os.remove(link)
        os.symlink(name, link)
    return logging.FileHandler(path, mode="a", encoding="utf-8")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "invalid-user"


@contextlib.contextmanager
def listening(logger_name: str, handler: logging.Handler) -> Iterator[None]:
    """``handler`` receives the logger's INFO records while the block runs (even when the console
    shows only warnings); the logger's handlers and level are restored afterwards."""
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def wants_progress_bar(mode: str = "auto", stream: IO[str] | None = None) -> bool:
    """``"on"``/``"off"`` force it; ``"auto"`` shows a bar only when stderr is a terminal."""
    if mode != "auto":
        return mode == "on"
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


@contextlib.contextmanager
def progress_bar(
    total: int | None, desc: str, *, initial: int = 0, unit: str = "iter", enabled: bool = True
) -> Iterator[Any]:
    """A tqdm bar on stderr (or ``None`` when not ``enabled``); while it is open, log lines from
    ``StderrHandler`` are printed above it instead of through it."""
    if not enabled:
        yield None
        return
    import tqdm

    bar = tqdm.tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr,
                    dynamic_ncols=True, leave=True)
    _active_bars.append(bar)
    try:
        yield bar
    finally:
        _active_bars.remove(bar)
        bar.close()
