"""HDF5 inputs for HDF5Data: the source list and the datasets of one file (``util/hdf5.cpp``).

Relative paths (the list file, and the .h5 files it names) are opened relative to the current
working directory, exactly as Caffe's ``std::ifstream``/``H5Fopen`` do, not relative to the
prototxt or the list file.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from recaffe import errors
from recaffe.data import DataError
from recaffe.io import h5

KIND = "HDF5 data file"


def read_source_list(source: str) -> list[str]:
    """The .h5 file names in ``source``: whitespace-separated tokens, as ``ifstream >> name`` reads."""
    try:
        with open(source, "rb") as f:  # names are bytes to the file system, as Caffe reads them
            names = [os.fsdecode(name) for name in f.read().split()]
    except OSError as e:
        raise DataError(f"failed to open the HDF5 source list {source!r}: {e.strerror}") from e
    if not names:
        raise DataError(f"must have at least 1 HDF5 filename listed in {source!r}")
    return names


def load_datasets(filename: str, names: list[str], dtype: type[np.floating]) -> list[np.ndarray]:
    """The datasets ``names`` of ``filename`` as arrays of ``dtype``; they must share dim 0.

    Integer and floating-point datasets are converted (HDF5 classes H5T_INTEGER and H5T_FLOAT);
    anything else is refused, as Caffe refuses it. Declared sizes are checked before reading
    (``recaffe.io.h5``), and h5py's own errors become DataErrors naming the file.
    """
    try:
        with h5.open_read(filename, KIND) as f, errors.read_guard(filename, KIND):
            arrays = [_read(f, filename, name, dtype) for name in names]
    except errors.FileReadError as e:
        raise DataError(str(e)) from e
    rows = arrays[0].shape[0]
    for name, array in zip(names, arrays):
        if array.shape[0] != rows:
            raise DataError(f"HDF5 file {filename!r}: dataset {name!r} has {array.shape[0]} rows but "
                            f"dataset {names[0]!r} has {rows} (all datasets must share dim 0)")
    return arrays


def _read(f: h5py.File, filename: str, name: str, dtype: type[np.floating]) -> np.ndarray:
    node = f.get(name)
    if not isinstance(node, h5py.Dataset):
        found = ", ".join(sorted(k for k in f if isinstance(f.get(k), h5py.Dataset))) or "none"
        raise DataError(f"HDF5 file {filename!r} has no dataset {name!r} (the dataset name is the top "
                        f"blob's name; datasets found: {found})")
    if node.dtype.kind not in "iuf" or h5py.check_enum_dtype(node.dtype) is not None:
        raise DataError(f"HDF5 file {filename!r}: dataset {name!r} has unsupported type {node.dtype} "
                        f"(integer or floating-point data only)")
    if node.ndim < 1:
        raise DataError(f"HDF5 file {filename!r}: dataset {name!r} must have at least 1 axis")
    return h5.read_array(node, filename, KIND).astype(dtype, copy=False)
