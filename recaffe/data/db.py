"""Caffe's key-value databases (``caffe::db``): LMDB and LevelDB, read in key order, written in batches.

``open_db(source, backend, mode)`` gives a ``Database`` with ``cursor()`` and ``transaction()``,
like Caffe's ``db::GetDB(backend)->Open(source, mode)``:

* ``mode="read"``: the database must exist. LMDB is opened read-only without a lock file
  (``lock=False``), so databases on read-only media work.
* ``mode="new"``: the database must not exist yet (Caffe's ``db::NEW``: LMDB ``mkdir``s the folder,
  LevelDB sets ``error_if_exists``).
* ``mode="write"``: open an existing database for writing.

A ``Cursor`` walks records in key order (bytewise, as both stores sort); ``next()`` past the last
record leaves it invalid and ``seek_to_first()`` restarts it, which is how the Data layer wraps
around. A ``Transaction`` buffers ``put``s until ``commit()``; the tools commit every
``COMMIT_EVERY`` records as Caffe's do. LMDB's map grows by doubling when full, as Caffe's does.

LevelDB needs the optional ``plyvel`` package (``pip install recaffe[leveldb]``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import lmdb

from recaffe.data import DataError, lmdb_check
from recaffe.io import atomic
from recaffe.proto import caffe_pb2

COMMIT_EVERY = 1000
MODES = ("read", "write", "new")
_LEVELDB_OPTIONS = {"block_size": 65536, "write_buffer_size": 268435456, "max_open_files": 100}


def backend_name(backend: int | str) -> str:
    """``"lmdb"`` or ``"leveldb"`` from a ``DataParameter.DB`` value or a tool's ``-backend`` string."""
    db = caffe_pb2.DataParameter.DB
    name = (backend if isinstance(backend, str) else db.Name(db.ValueType(backend))).lower()
    if name not in ("lmdb", "leveldb"):
        raise DataError(f"unknown database backend {backend!r} (use lmdb or leveldb)")
    return name


def open_db(source: str | os.PathLike[str], backend: int | str, mode: str = "read") -> Database:
    """Open ``source`` with ``backend`` (``DataParameter.DB`` or ``"lmdb"``/``"leveldb"``)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    name = backend_name(backend)
    path = os.fspath(source)
    where = f"{name.upper()} database {path!r}"
    if mode == "read" and not os.path.exists(path):
        raise DataError(f"cannot open the {where}: no such file or directory")
    if mode == "new":
        refuse_existing(path, name)
    if name == "lmdb":
        return _LMDB(path, mode, where)
    return _LevelDB(path, mode, where)


def refuse_existing(path: str, backend: str) -> None:
    """Caffe's ``db::NEW``: a database is never created over an existing one."""
    if os.path.exists(path):
        raise DataError(f"cannot create the {backend.upper()} database {path!r}: it already exists")


class Cursor:
    """A position in a database: ``valid``, ``key()``, ``value()``, ``next()``, ``seek_to_first()``."""

    def __init__(self, records: Callable[[bytes | None], Iterator[tuple[bytes, bytes]]]) -> None:
        self._records = records  # gives a fresh key-ordered iterator, from a key or the first record
        self._iterator: Iterator[tuple[bytes, bytes]] = iter(())
        self._current: tuple[bytes, bytes] | None = None
        self.seek_to_first()

    @property
    def valid(self) -> bool:
        return self._current is not None

    def seek_to_first(self) -> None:
        self._iterator = self._records(None)
        self.next()

    def seek(self, key: bytes) -> None:
        """Move to the first record whose key is >= ``key`` (invalid if there is none)."""
        self._iterator = self._records(key)
        self.next()

    def next(self) -> None:
        self._current = next(self._iterator, None)

    def key(self) -> bytes:
        return self._item()[0]

    def value(self) -> bytes:
        return self._item()[1]

    def _item(self) -> tuple[bytes, bytes]:
        if self._current is None:
            raise DataError("the database cursor is past the last record")
        return self._current


class Transaction:
    """Buffered writes, applied by ``commit()``."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._pending: list[tuple[bytes, bytes]] = []

    def put(self, key: str | bytes, value: bytes) -> None:
        self._pending.append((key.encode() if isinstance(key, str) else key, value))

    def commit(self) -> None:
        self._database._write(self._pending)
        self._pending = []


class Database:
    """An open database (see the module docstring)."""

    def __init__(self, where: str) -> None:
        self.where = where

    def cursor(self) -> Cursor:
        return Cursor(self._records)

    def transaction(self) -> Transaction:
        return Transaction(self)

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def closed_on_error(self) -> Iterator[Database]:
        """The database, closed if the block fails; kept open otherwise (for the reader it went to)."""
        try:
            yield self
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        raise NotImplementedError

    def _records(self, start: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        raise NotImplementedError

    def _write(self, records: list[tuple[bytes, bytes]]) -> None:
        raise NotImplementedError


class _SharedEnvironments:
    """Read-only LMDB environments shared by path: py-lmdb opens a path only once per process,
    while Caffe lets any number of layers (a train and a test net, say) read one database."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, tuple[Any, int]] = {}

    def acquire(self, path: str) -> Any:
        key = os.path.realpath(path)
        with self._lock:
            if key not in self._open:
                self._open[key] = (lmdb.open(path, readonly=True, lock=False, readahead=False), 0)
            env, users = self._open[key]
            self._open[key] = (env, users + 1)
            return env

    def release(self, path: str) -> None:
        key = os.path.realpath(path)
        with self._lock:
            env, users = self._open.pop(key)
            if users > 1:
                self._open[key] = (env, users - 1)
            else:
                env.close()


_READERS = _SharedEnvironments()


class _LMDB(Database):
    def __init__(self, path: str, mode: str, where: str) -> None:
        super().__init__(where)
        # absolute: the shared environment is released by the same name if the cwd changes meanwhile
        self._path, self._shared = os.path.abspath(path), mode == "read"
        try:
            if mode != "new":
                lmdb_check.check_file(path, where)
            if self._shared:
                self._env = _READERS.acquire(path)
            else:
                if mode == "new":
                    os.mkdir(path, 0o744)
                self._env = lmdb.open(path, create=False)
        except (lmdb.Error, OSError) as e:
            hint = " (is it a LevelDB database? set backend: LEVELDB)" if _looks_like_leveldb(path) else ""
            raise DataError(f"cannot open the {where}: {e}{hint}") from e
        self._txn: Any = None

    def _records(self, start: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        try:
            if self._txn is None:  # one read snapshot per open database, like Caffe's cursor
                self._txn = self._env.begin(buffers=False)
            cursor = self._txn.cursor()
            found = cursor.first() if start is None else cursor.set_range(start)
        except lmdb.Error as e:
            raise _corrupt(self.where, e) from e
        return _checked(cursor.iternext(), self.where, lmdb.Error) if found else iter(())

    def _write(self, records: list[tuple[bytes, bytes]]) -> None:
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    for key, value in records:
                        txn.put(key, value)
                return
            except lmdb.MapFullError:
                self._env.set_mapsize(self._env.info()["map_size"] * 2)

    def close(self) -> None:
        if self._env is None:
            return
        if self._txn is not None:
            self._txn.abort()
            self._txn = None
        if self._shared:
            _READERS.release(self._path)
        else:
            self._env.close()
        self._env = None


class _LevelDB(Database):
    def __init__(self, path: str, mode: str, where: str) -> None:
        super().__init__(where)
        try:
            import plyvel
        except ImportError as e:
            raise DataError(
                f"cannot open the {where}: LevelDB support needs the plyvel package "
                f"(pip install recaffe[leveldb]), or convert the data to LMDB"
            ) from e
        self._error = plyvel.Error
        try:
            self._db = plyvel.DB(path, create_if_missing=mode != "read", error_if_exists=mode == "new",
                                 **_LEVELDB_OPTIONS)
        except (plyvel.Error, OSError) as e:
            hint = " (it looks like an LMDB database: set backend: LMDB)" if _looks_like_lmdb(path) else ""
            raise DataError(f"cannot open the {where}: {e}{hint}") from e

    def _records(self, start: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        records = self._db.iterator() if start is None else self._db.iterator(start=start)
        return _checked(records, self.where, self._error)

    def _write(self, records: list[tuple[bytes, bytes]]) -> None:
        with self._db.write_batch() as batch:
            for key, value in records:
                batch.put(key, value)

    def close(self) -> None:
        self._db.close()


def _checked(records: Iterator[tuple[bytes, bytes]], where: str,
             library_error: type[Exception]) -> Iterator[tuple[bytes, bytes]]:
    """``records``, with the store's errors on damaged data raised as DataErrors naming the database."""
    try:
        yield from records
    except library_error as e:
        raise _corrupt(where, e) from e


def _corrupt(where: str, e: Exception) -> DataError:
    return DataError(f"cannot read the {where}: {e}. The database is damaged; rebuild it (e.g. with "
                     f"convert_imageset) or restore it from a good copy")


def _looks_like_lmdb(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "data.mdb"))


def _looks_like_leveldb(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "CURRENT"))


class Writer:
    """Puts records into a database, committing every ``COMMIT_EVERY`` records (as Caffe's tools do).

    Use as a context manager: leaving the block normally commits the rest and closes the database.
    A new database (``mode="new"``) is built in a temporary folder beside ``path`` and renamed to
    ``path`` only when complete (``recaffe.io.atomic``): an interrupted build leaves nothing under
    ``path``, and an error removes the partial database.
    """

    def __init__(self, path: str | os.PathLike[str], backend: int | str, mode: str = "new") -> None:
        self._build = contextlib.ExitStack()
        target = os.fspath(path)
        if mode == "new":
            name = backend_name(backend)
            refuse_existing(target, name)
            target = self._build.enter_context(atomic.replace_dir(path, f"{name.upper()} database"))
        try:
            self.database = open_db(target, backend, mode)
        except BaseException:
            self._build.__exit__(*sys.exc_info())
            raise
        self.database.where = self.database.where.replace(repr(target), repr(os.fspath(path)))
        self._txn = self.database.transaction()
        self.count = 0

    def put(self, key: str | bytes, value: bytes) -> None:
        self._txn.put(key, value)
        self.count += 1
        if self.count % COMMIT_EVERY == 0:
            self._txn.commit()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        try:
            try:
                if exc_type is None:
                    self._txn.commit()
            finally:
                self.database.close()
        except BaseException:
            self._build.__exit__(*sys.exc_info())  # the partial database is removed
            raise
        self._build.__exit__(exc_type, exc, tb)  # renamed into place, or removed after an error
