"""pycaffe's Blob and BlobVec (re-exported by ``caffe``): numpy views onto recaffe blobs.

On the CPU, ``blob.data`` and ``blob.diff`` are live numpy views of the blob's torch storage:
writing into them changes the net, and they follow reshapes and shared storage because the view
is made again on every access. A blob viewed this way keeps its values in that row-major storage
from then on (``recaffe.Blob.keep_row_major``): layers that would hand over a channels-last result
copy it in, so an array kept across a forward or backward shows the new values, as in Caffe.

A tensor on another device (CUDA) cannot be viewed from numpy. There the wrapper behaves like
Caffe's SyncedMemory: every access copies the device values into a host mirror (one buffer per
blob side, reused while the shape holds) and marks the mirror as the newest copy; ``sync()``
writes every marked mirror back to its device. pycaffe calls ``sync()`` before anything runs on
the device (forward, backward, reshape, solver steps, saving), so the usual
``net.blobs['data'].data[...] = x; net.forward()`` works unchanged. An array kept from before a
forward shows the old values until ``.data`` is read again, as with Caffe's GPU mode.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from recaffe import blob as recaffe_blob

# (wrapper, "data" | "diff") whose host mirror may hold values newer than the device's
_host_newer: dict[tuple[int, str], tuple[Blob, str]] = {}


# one wrapper per recaffe blob while anyone holds it, so wrappers compare by identity
_wrappers: weakref.WeakValueDictionary[int, Blob] = weakref.WeakValueDictionary()


def wrap(blob: recaffe_blob.Blob) -> Blob:
    """The ``caffe.Blob`` of a recaffe blob (the same object on every call while it is alive)."""
    wrapper = _wrappers.get(id(blob))
    if wrapper is None or wrapper._blob is not blob:
        wrapper = _wrappers[id(blob)] = Blob(blob)
    return wrapper


def needs_mirror(tensor: torch.Tensor) -> bool:
    """Whether numpy cannot view ``tensor`` directly (anything not in CPU memory)."""
    return tensor.device.type != "cpu"


def sync() -> None:
    """Write every host mirror handed out since the last sync back to its device."""
    pending = list(_host_newer.values())
    _host_newer.clear()
    for blob, side in pending:
        blob._push(side)


def synced(callback: Callable[..., Any]) -> Callable[..., None]:
    """``callback``, then the host mirrors it wrote to go back to their devices (``sync``)."""
    def run(*args: Any) -> None:
        callback(*args)
        sync()
    return run


class Blob:
    """A recaffe Blob seen as pycaffe's ``caffe.Blob``: shape, legacy dims, reshape, data, diff."""

    def __init__(self, blob: recaffe_blob.Blob) -> None:
        self._blob = blob
        self._mirrors: dict[str, np.ndarray] = {}

    @property
    def shape(self) -> list[int]:
        return list(self._blob.shape)

    @property
    def num(self) -> int:
        return self._blob.num

    @property
    def channels(self) -> int:
        return self._blob.channels

    @property
    def height(self) -> int:
        return self._blob.height

    @property
    def width(self) -> int:
        return self._blob.width

    @property
    def count(self) -> int:
        return self._blob.count()

    def reshape(self, *dims: int) -> None:
        sync()
        self._blob.reshape(tuple(int(d) for d in dims))

    @property
    def data(self) -> np.ndarray:
        return self._view("data")

    @property
    def diff(self) -> np.ndarray:
        return self._view("diff")

    def _tensor(self, side: str) -> torch.Tensor:
        return getattr(self._blob, side)

    def _view(self, side: str) -> np.ndarray:
        tensor = self._tensor(side)
        if not needs_mirror(tensor):
            self._blob.keep_row_major(diff=side == "diff")  # numpy's view must stay current
            return tensor.numpy()
        key = (id(self), side)
        mirror = self._mirrors.get(side)
        if mirror is None or mirror.shape != tuple(tensor.shape):
            mirror = self._mirrors[side] = np.empty(tuple(tensor.shape), dtype=_numpy_dtype(tensor))
            _host_newer.pop(key, None)
        if key not in _host_newer:
            mirror[...] = tensor.detach().cpu().numpy()
            _host_newer[key] = (self, side)
        return mirror

    def _push(self, side: str) -> None:
        tensor, mirror = self._tensor(side), self._mirrors.get(side)
        if mirror is not None and mirror.shape == tuple(tensor.shape):
            tensor.copy_(torch.from_numpy(mirror))

    def __repr__(self) -> str:
        return f"<caffe.Blob shape={self.shape}>"


def _numpy_dtype(tensor: torch.Tensor) -> np.dtype:
    return torch.empty((), dtype=tensor.dtype).numpy().dtype


class BlobVec:
    """pycaffe's BlobVec: a live, list-like view of a layer's blobs, plus ``add_blob(*shape)``.

    ``blobs`` is the layer's own list: blobs added here become the layer's parameters.
    ``new_blob`` makes the blob ``add_blob`` appends (a zero-filled Blob of the given shape).
    """

    def __init__(
        self,
        blobs: list[recaffe_blob.Blob],
        new_blob: Callable[[Sequence[int]], recaffe_blob.Blob] | None = None,
    ) -> None:
        self._blobs = blobs
        self._new_blob = new_blob or recaffe_blob.Blob

    def __len__(self) -> int:
        return len(self._blobs)

    def __getitem__(self, index: int | slice) -> Blob | list[Blob]:
        if isinstance(index, slice):
            return [wrap(b) for b in self._blobs[index]]
        return wrap(self._blobs[index])

    def __iter__(self) -> Iterator[Blob]:
        return (wrap(b) for b in self._blobs)

    def __contains__(self, item: object) -> bool:
        return isinstance(item, Blob) and any(item._blob is b for b in self._blobs)

    def add_blob(self, *shape: int) -> None:
        """Append a new zero-filled blob of ``shape`` (a learnable parameter of a Python layer)."""
        self._blobs.append(self._new_blob(tuple(int(d) for d in shape)))

    def __repr__(self) -> str:
        return f"<caffe.BlobVec of {len(self)} blobs>"
