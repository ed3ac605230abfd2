"""Net weights in HDF5 (Caffe's ``ToHDF5``/``CopyTrainedLayersFromHDF5``): ``/data/<layer>/<i>``.

Only owner parameters are written (shared ones are omitted); ``/diff/<layer>/<i>`` holds every
param's diff when asked. Loading matches layers by name (the last layer of a repeated name wins,
as in Caffe) and lets a shared, non-owner param be absent.
"""

from __future__ import annotations

import logging
import os
from typing import Protocol

import numpy as np
import torch

from recaffe import errors
from recaffe.io import atomic, h5
from recaffe.layer import Layer

log = logging.getLogger(__name__)

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class Net(Protocol):
    """What weight files need of a ``recaffe.Net`` (named here, so io does not import net)."""

    layers: list[Layer]
    layer_names: list[str]
    param_id_vecs: list[list[int]]
    param_owners: list[int]

    def has_layer(self, name: str) -> bool: ...

    def layer_index(self, name: str) -> int: ...


def is_hdf5(path: str | os.PathLike[str]) -> bool:
    """True iff ``path`` starts with the HDF5 signature (at offset 0; Caffe also uses H5Fis_hdf5)."""
    try:
        with open(path, "rb") as f:
            return f.read(8) == _HDF5_SIGNATURE
    except OSError:
        return False


def _h5py():  # type: ignore[no-untyped-def]
    import h5py

    return h5py


def save_hdf5_weights(net: Net, path: str | os.PathLike[str], write_diff: bool = False) -> None:
    repeated = {name for name in net.layer_names if net.layer_names.count(name) > 1}
    if repeated:
        raise ValueError(f"cannot save HDF5 weights to {os.fspath(path)!r}: two layers are named "
                         f"{sorted(repeated)[0]!r} (HDF5 groups are keyed by layer name)")
    atomic.write_with(path, "HDF5 weights file", lambda temp: _write_hdf5_weights(net, temp, write_diff))


def _write_hdf5_weights(net: Net, path: str, write_diff: bool) -> None:
    with _h5py().File(path, "w") as f:
        data = f.create_group("data")
        diff = f.create_group("diff") if write_diff else None
        for layer_id, (name, layer) in enumerate(zip(net.layer_names, net.layers)):
            layer_data = data.create_group(name)
            layer_diff = diff.create_group(name) if diff is not None else None
            for param_id, blob in enumerate(layer.blobs):
                net_param_id = net.param_id_vecs[layer_id][param_id]
                if net.param_owners[net_param_id] == -1:
                    layer_data.create_dataset(str(param_id), data=blob.data.detach().cpu().numpy())
                if layer_diff is not None:
                    layer_diff.create_dataset(str(param_id), data=blob.diff.detach().cpu().numpy())


def load_hdf5_weights(net: Net, path: str | os.PathLike[str]) -> set[str]:
    """Copy the weights of ``path`` into same-named layers; returns the names of those layers."""
    kind = "HDF5 weights file"
    with h5.open_read(path, kind) as f, errors.read_guard(path, kind):
        if "data" not in f or not isinstance(f["data"], _h5py().Group):
            raise errors.unreadable(path, kind, "it has no /data group",
                                    "It is not a Caffe HDF5 weights file")
        copied = set()
        for name, group in f["data"].items():
            if not net.has_layer(name):
                log.info("Ignoring source layer %s", name)
                continue
            layer_id = net.layer_index(name)
            _load_layer(net, layer_id, group, os.fspath(path))
            copied.add(name)
        return copied


def _load_layer(net: Net, layer_id: int, group, path: str) -> None:  # type: ignore[no-untyped-def]
    layer = net.layers[layer_id]
    where = f"{path}: layer {layer.name!r}"
    if not isinstance(group, _h5py().Group):
        raise errors.FileReadError(f"{where}: /data/{layer.name} is not a group of datasets")
    if len(group) > len(layer.blobs):
        raise errors.FileReadError(f"{where}: incompatible number of blobs "
                         f"({len(group)} in the file, {len(layer.blobs)} in the net)")
    for j, blob in enumerate(layer.blobs):
        if str(j) not in group:
            if net.param_owners[net.param_id_vecs[layer_id][j]] != -1:
                continue  # a shared param: its owner carries the values
            raise errors.FileReadError(f"{where}: incompatible number of blobs (param {j} missing)")
        dataset = group[str(j)]
        if not isinstance(dataset, _h5py().Dataset) or dataset.dtype.kind not in "fiu":
            raise errors.FileReadError(f"{where}: /data/{layer.name}/{j} is not a numeric dataset")
        if tuple(dataset.shape) != blob.shape:
            raise errors.FileReadError(f"{where}: cannot load param {j}; shape mismatch. Source shape is "
                             f"{tuple(dataset.shape)}, target shape is {blob.shape}")
        h5.check_declared_size(dataset, path, "HDF5 weights file", expected=blob.count())
        # read as native float (or double) values, as H5LTread_dataset_float/_double do
        values = dataset.astype(np.float64 if blob.dtype == torch.float64 else np.float32)[()]
        blob.data.copy_(torch.from_numpy(np.asarray(values)))
