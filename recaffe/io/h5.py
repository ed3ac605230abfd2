"""HDF5 files read defensively (weights, solver states, HDF5Data sources), through h5py.

``open_read(path, kind)`` opens a file, and ``read_guard(path, kind)`` (from ``recaffe.errors``)
wraps every access, so a damaged file gives a ``FileReadError`` naming it rather than h5py's
``RuntimeError``/``KeyError``. ``read_array`` checks a dataset's declared size before reading it:

* an uncompressed dataset may not declare more bytes than the file stores for it (a header of a
  few KB that declares gigabytes is a damaged or forged file; reading it would allocate them);
* no dataset may declare more than half of the memory available now, nor more elements than the
  caller expects (a solver state's history blob must match its param).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from recaffe import errors

PathLike = str | os.PathLike[str]


def h5py_module() -> Any:
    import h5py

    return h5py


def open_read(path: PathLike, kind: str) -> Any:
    """``h5py.File(path, "r")``, with a ``FileReadError`` naming ``path`` if it cannot be opened."""
    h5py = h5py_module()
    try:
        return h5py.File(path, "r")
    except FileNotFoundError as e:
        raise errors.unreadable(path, kind, "no such file") from e
    except errors.LIBRARY_ERRORS as e:
        raise errors.unreadable(path, kind, errors.describe(e),
                                "It is not an HDF5 file, or it is damaged") from e


def dataset(group: Any, name: str, path: PathLike, kind: str) -> Any:
    """The dataset ``name`` of ``group``; a ``FileReadError`` if it is missing or not a dataset."""
    node = group.get(name)
    if not isinstance(node, h5py_module().Dataset):
        what = "is missing" if node is None else f"is a {type(node).__name__.lower()}, not a dataset"
        raise errors.unreadable(path, kind, f"{_where(group, name)} {what}")
    return node


def check_declared_size(node: Any, path: PathLike, kind: str, expected: int | None = None) -> None:
    """Refuse a dataset whose declared size cannot be right, before reading a byte of it."""
    count = int(np.prod(node.shape, dtype=object)) if node.shape else 1
    nbytes = count * node.dtype.itemsize
    where = f"dataset {node.name!r}"
    if expected is not None and count != expected:
        raise errors.unreadable(path, kind, f"{where} holds {count} values where {expected} are expected")
    if node.id.get_create_plist().get_nfilters() == 0:
        stored = node.id.get_storage_size()
        if nbytes > stored:
            raise errors.unreadable(
                path, kind, f"{where} declares shape {node.shape} ({nbytes} bytes) but the file stores "
                f"only {stored} bytes of it", errors.CORRUPT_HINT)
    limit = errors.available_memory() // 2
    if nbytes > limit:
        raise errors.unreadable(path, kind, f"{where} declares shape {node.shape} ({nbytes} bytes), more "
                                f"than half of the memory available ({limit * 2} bytes)")


def read_array(node: Any, path: PathLike, kind: str, expected: int | None = None) -> np.ndarray:
    """A dataset's values, after ``check_declared_size``."""
    check_declared_size(node, path, kind, expected)
    with errors.read_guard(path, kind):
        return np.asarray(node[()])


def _where(group: Any, name: str) -> str:
    parent = group.name.rstrip("/")
    return f"dataset {parent}/{name!r}" if parent else f"dataset {name!r}"
