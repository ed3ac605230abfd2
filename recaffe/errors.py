"""recaffe's error classes, and the wording of the errors every file reader and writer raises.

Every problem a user's input can cause is a ``RecaffeError``: its message names the file (and the
line, field, layer or dataset where one applies) and says what to do. The command line prints it
as one FATAL line, with no traceback (``RECAFFE_TRACEBACK=1`` adds it). The classes also derive
from the built-in exception they refine (``ValueError``, ``OSError``), so ``except ValueError``
written against earlier versions still catches them.

* ``FileReadError``: a file is missing, unreadable, corrupt or not of the expected kind.
  ``ProtoFileError`` (prototxt, caffemodel, binaryproto, solverstate) and ``DataError``
  (databases, HDF5Data, image lists, images) derive from it or share its base.
* ``FileWriteError``: a file could not be written (disk full, permissions); the partial file
  has been removed.

``read_guard(path, kind)`` turns whatever a reading library raises (h5py's ``RuntimeError`` and
``KeyError``, numpy's ``MemoryError``, ...) into a ``FileReadError`` naming the file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

PathLike = str | os.PathLike[str]


class RecaffeError(Exception):
    """An error caused by the user's input; the message names the culprit and says what to do."""


class FileReadError(RecaffeError, ValueError):
    """A file could not be read: missing, unreadable, truncated, corrupt or of the wrong kind."""

    def __init__(self, message: str, path: PathLike | None = None) -> None:
        super().__init__(message)
        self.path = os.fspath(path) if path is not None else None


class FileWriteError(RecaffeError, OSError):
    """A file could not be written; nothing partial is left under its name."""

    def __init__(self, message: str, path: PathLike | None = None) -> None:
        super().__init__(message)
        self.path = os.fspath(path) if path is not None else None

    def __str__(self) -> str:  # OSError's own __str__ would print the args tuple
        return str(self.args[0])


def describe(exc: BaseException) -> str:
    """A library exception as one line: ``strerror`` for OS errors, else the message or the type."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


def unreadable(path: PathLike, kind: str, detail: str, hint: str = "") -> FileReadError:
    """``cannot read the <kind> '<path>': <detail>. <hint>``"""
    message = f"cannot read the {kind} {os.fspath(path)!r}: {detail}"
    if hint:
        message += f". {hint}"
    return FileReadError(message, path)


def unwritable(path: PathLike, kind: str, exc: BaseException) -> FileWriteError:
    """``cannot write the <kind> '<path>': <reason>``, with advice for a full disk."""
    message = f"cannot write the {kind} {os.fspath(path)!r}: {describe(exc)}"
    if isinstance(exc, OSError) and exc.errno == 28:  # ENOSPC
        message += " (free some disk space and try again)"
    return FileWriteError(message, path)


CORRUPT_HINT = "The file is damaged or not of this kind; restore it from a good copy or recreate it"

# what reading libraries raise on malformed files (h5py: OSError, RuntimeError, KeyError, ...)
LIBRARY_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError, MemoryError,
                  OverflowError, AttributeError, UnicodeError)


@contextlib.contextmanager
def read_guard(path: PathLike, kind: str) -> Iterator[None]:
    """Re-raise a library's exception from reading ``path`` as a ``FileReadError`` naming it."""
    try:
        yield
    except RecaffeError:
        raise
    except LIBRARY_ERRORS as e:
        raise unreadable(path, kind, describe(e), CORRUPT_HINT) from e


def available_memory() -> int:
    """Bytes of memory available to a new allocation (MemAvailable; physical memory elsewhere)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62
