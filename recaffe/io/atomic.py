"""Atomic file writes: every file recaffe writes appears complete under its name, or not at all.

``replace(path, kind)`` gives a temporary name in the same folder (``.<name>.tmp-<pid>-<random>``);
the caller writes the file there, then it is flushed to disk (``fsync``), renamed over ``path``
(``os.replace``, atomic on POSIX within one file system) and the folder entry is synced too. A kill
at any moment leaves either the old file or the new one under ``path``, never a part of one. If
writing fails (disk full, permissions), the temporary file is removed and a ``FileWriteError``
names ``path``. ``replace_dir`` does the same for a folder (an LMDB database being built).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterator

from recaffe import errors

PathLike = str | os.PathLike[str]
WRITE_ERRORS = (OSError,)  # what a file system raises when a write fails (disk full, permissions)


def temp_name(path: PathLike) -> str:
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    return os.path.join(folder, f".{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def is_temp_name(name: str) -> bool:
    """True for the name of a temporary file ``replace`` writes (left behind only by a kill)."""
    return name.startswith(".") and ".tmp-" in name


@contextlib.contextmanager
def replace(path: PathLike, kind: str) -> Iterator[str]:
    """Yield a temporary path to write ``path``'s new contents to; see the module docstring."""
    check_folder(path, kind)
    temp = temp_name(path)
    try:
        yield temp
        _fsync_file(temp)
        os.replace(temp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.remove(temp)
        if isinstance(e, errors.RecaffeError) or not isinstance(e, WRITE_ERRORS):
            raise
        raise errors.unwritable(path, kind, e) from e
    _fsync_dir(os.path.dirname(os.path.abspath(os.fspath(path))))


def write_bytes(path: PathLike, data: bytes, kind: str) -> None:
    with replace(path, kind) as temp, open(temp, "wb") as f:
        f.write(data)


def write_with(path: PathLike, kind: str, write: Callable[[str], None]) -> None:
    """``write(temp_path)`` writes the file (h5py, a library's own writer); then it is renamed."""
    with replace(path, kind) as temp:
        write(temp)


@contextlib.contextmanager
def replace_dir(path: PathLike, kind: str) -> Iterator[str]:
    """Yield a temporary folder name to build ``path`` in; renamed to ``path`` when complete."""
    check_folder(path, kind)
    temp = temp_name(path)
    try:
        yield temp
        for name in os.listdir(temp) if os.path.isdir(temp) else []:
            _fsync_file(os.path.join(temp, name))
        if os.path.exists(path):
            raise FileExistsError(17, "it already exists")
        os.rename(temp, path)
    except BaseException as e:
        shutil.rmtree(temp, ignore_errors=True)
        if isinstance(e, errors.RecaffeError) or not isinstance(e, WRITE_ERRORS):
            raise
        raise errors.unwritable(path, kind, e) from e
    _fsync_dir(os.path.dirname(os.path.abspath(os.fspath(path))))


def check_folder(path: PathLike, kind: str) -> None:
    """The folder ``path`` goes in must exist (the library writing the temporary file would name that)."""
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(folder):
        raise errors.FileWriteError(f"cannot write the {kind} {os.fspath(path)!r}: the folder {folder!r} "
                                    f"does not exist", path)


def _fsync_file(path: str) -> None:
    if not os.path.isfile(path):
        return
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some file systems cannot open folders; the rename itself was atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
