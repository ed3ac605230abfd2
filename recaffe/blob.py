"""Blob: an N-D array pair (data, diff) on one device, the unit of storage in a Net."""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator, Sequence
from typing import cast

import torch

from recaffe import errors

MAX_BLOB_AXES = 32


class BlobShapeError(ValueError):
    """A blob shape that cannot be: a negative dim, a size past int64, or more than memory can hold.
    ``dims`` is the shape asked for (a layer names the prototxt fields it came from)."""

    def __init__(self, message: str, dims: tuple[int, ...]) -> None:
        super().__init__(message)
        self.dims = dims


_SMALL = 64 << 20  # bytes: an allocation this small is not checked against the free memory


def check_fits(dims: tuple[int, ...], count: int, dtype: torch.dtype, device: torch.device) -> None:
    """Refuse a new allocation of ``count`` values that overflows or exceeds the device's free memory
    (asked only for allocations of 64 MiB or more: reading it costs more than a small blob's setup)."""
    itemsize = dtype.itemsize
    if count >= 2**63:
        raise BlobShapeError(f"blob shape {dims} holds {count} values, which overflows a 64-bit count", dims)
    if count * itemsize < _SMALL:
        return
    free = errors.available_memory() if device.type != "cuda" else torch.cuda.mem_get_info(device)[0]
    if count * itemsize > free:
        raise BlobShapeError(f"blob shape {dims} needs {count * itemsize} bytes, more than the {free} bytes "
                             f"of memory available", dims)


_MATERIALISING = threading.Lock()  # held by whoever allocates a flat storage or copies into it


class _Memory:
    """A blob's flat storage, allocated zero-filled on first use, and, while ``held`` is set, a newer
    copy of its first elements as a tensor of some shape and memory layout.

    Like the CPU/GPU heads of Caffe's SyncedMemory: a layer may leave its result in the layout its
    kernel produced (channels-last, say) and the next layer may take it as it is; reading the flat
    storage first copies the held tensor back (row-major) and drops it.
    """

    __slots__ = ("size", "dtype", "device", "flat", "held", "row_major_only")

    def __init__(self, size: int, dtype: torch.dtype, device: torch.device) -> None:
        self.size, self.dtype, self.device = size, dtype, device
        self.flat: torch.Tensor | None = None
        self.held: torch.Tensor | None = None
        self.row_major_only = False  # set while someone outside keeps a view of ``flat``

    def get(self) -> torch.Tensor:
        if self.flat is None or self.held is not None:
            with _MATERIALISING:  # steps running at once may read one blob (deploy mode's stages)
                if self.flat is None:
                    self.flat = torch.zeros(self.size, dtype=self.dtype, device=self.device)
                if self.held is not None:  # dropped once copied: no reader sees the copy half done
                    self.flat[: self.held.numel()].view(self.held.shape).copy_(self.held)
                    self.held = None
        return self.flat

    @property
    def allocated(self) -> bool:
        return self.flat is not None or self.held is not None


class Blob:
    """Caffe's Blob: ``data`` and ``diff`` tensors of one shape, zero-initialised.

    Storage grows but never shrinks (Caffe's capacity rule): a reshape to a count that fits the
    current capacity keeps the memory and its contents; a larger one allocates fresh zeros.
    ``share_data``/``share_diff`` make two blobs use one storage, as Caffe's ShareData does.
    Memory is allocated when first used (inference nets allocate no diffs).

    ``data``/``diff`` are row-major views of the flat storage. A layer may instead hand its result
    over in another memory layout with ``adopt_data``/``adopt_diff`` (no copy), and a layer that can
    use any layout reads ``strided_data``/``strided_diff``; ``data``/``diff`` copy an adopted tensor
    back into the flat storage when next read, so every other reader sees Caffe's row-major blob.
    (As with Caffe's GPU-resident blobs, a view of ``data`` taken earlier is stale until then.)

    A default ``Blob()`` has no shape and count 0, like Caffe's; ``Blob(())`` is a scalar.
    """

    def __init__(
        self,
        shape: Sequence[int] | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._shape: tuple[int, ...] = ()
        self._count = 0
        self._capacity = 0
        self._data_mem = _Memory(0, dtype, self.device)
        self._diff_mem = _Memory(0, dtype, self.device)
        self._data_view: torch.Tensor | None = None
        self._diff_view: torch.Tensor | None = None
        if shape is not None:
            self.reshape(shape)

    # ------------------------------------------------------------------ shape
    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def num_axes(self) -> int:
        return len(self._shape)

    def count(self, start: int = 0, end: int | None = None) -> int:
        """Product of the dims in ``[start, end)``; ``count()`` is the element count."""
        if start == 0 and end is None:
            return self._count
        end = self.num_axes if end is None else end
        return math.prod(self._shape[start:end])

    def canonical_axis(self, axis: int) -> int:
        """Map an axis in ``[-num_axes, num_axes)`` to ``[0, num_axes)`` (CanonicalAxisIndex)."""
        n = self.num_axes
        if not -n <= axis < n:
            raise ValueError(f"axis {axis} out of range for a {n}-D blob of shape {self._shape}")
        return axis + n if axis < 0 else axis

    def shape_at(self, axis: int) -> int:
        return self._shape[self.canonical_axis(axis)]

    def legacy_shape(self, index: int) -> int:
        """Caffe's LegacyShape: dims indexed in ``-4..3`` on blobs of at most 4 axes; missing ones are 1."""
        if self.num_axes > 4:
            raise ValueError(f"legacy accessors need a blob of at most 4 axes, got shape {self._shape}")
        if index >= self.num_axes or index < -self.num_axes:
            return 1
        return self._shape[index]

    @property
    def num(self) -> int:
        return self.legacy_shape(0)

    @property
    def channels(self) -> int:
        return self.legacy_shape(1)

    @property
    def height(self) -> int:
        return self.legacy_shape(2)

    @property
    def width(self) -> int:
        return self.legacy_shape(3)

    def shape_string(self) -> str:
        return " ".join(str(d) for d in self._shape) + f" ({self._count})"

    def reshape(self, *shape: int | Sequence[int]) -> None:
        """Reshape to ``shape`` (a sequence, or dims as arguments), keeping memory that fits."""
        given = shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape
        dims = tuple(map(int, cast("Sequence[int]", given)))
        if len(dims) > MAX_BLOB_AXES:
            raise ValueError(f"a blob has at most {MAX_BLOB_AXES} axes, got {len(dims)}")
        if dims and min(dims) < 0:
            raise BlobShapeError(f"negative dimension in blob shape {dims}", dims)
        count = math.prod(dims)
        if count > self._capacity:
            check_fits(dims, count, self.dtype, self.device)
        self._shape = dims
        self._count = count
        if self._count > self._capacity:
            self._capacity = self._count
            self._data_mem = _Memory(self._count, self.dtype, self.device)
            self._diff_mem = _Memory(self._count, self.dtype, self.device)
        self._data_view = self._diff_view = None

    def reshape_like(self, other: Blob) -> None:
        self.reshape(other.shape)

    # ------------------------------------------------------------------- data
    @property
    def data(self) -> torch.Tensor:
        if self._data_view is None or self._data_mem.held is not None:
            self._data_view = self._data_mem.get()[: self._count].view(self._view_shape())
        return self._data_view

    @property
    def diff(self) -> torch.Tensor:
        if self._diff_view is None or self._diff_mem.held is not None:
            self._diff_view = self._diff_mem.get()[: self._count].view(self._view_shape())
        return self._diff_view

    def strided_data(self) -> torch.Tensor:
        """The data in the memory layout it is held in: an adopted tensor of this blob's shape, else
        ``data``. Either way it is the blob's storage, not a copy (an in-place layer may write it)."""
        held = self._data_mem.held
        return held if held is not None and held.shape == self._shape else self.data

    def strided_diff(self) -> torch.Tensor:
        held = self._diff_mem.held
        return held if held is not None and held.shape == self._shape else self.diff

    def adopt_data(self, tensor: torch.Tensor) -> None:
        """Make ``tensor`` (this blob's shape and dtype, any strides) the blob's data, without a copy,
        until ``data`` is next read (after ``keep_row_major``: copy it into the storage)."""
        self._adopt(tensor, diff=False)

    def adopt_diff(self, tensor: torch.Tensor) -> None:
        self._adopt(tensor, diff=True)

    def keep_row_major(self, diff: bool = False) -> None:
        """From now on keep the data (or diff) in the row-major storage only: ``adopt_*`` copies in.
        pycaffe calls this when numpy gets a view of the storage, so that the view stays current
        across forward and backward as a view of Caffe's CPU blob does. A reshape that allocates
        new storage ends it (the old view is of the old memory then, as in Caffe)."""
        (self._diff_mem if diff else self._data_mem).row_major_only = True

    def _adopt(self, tensor: torch.Tensor, diff: bool) -> None:
        self._check_adoptable(tensor)
        memory = self._diff_mem if diff else self._data_mem
        if memory.row_major_only:
            (self.diff if diff else self.data).copy_(tensor)
        else:
            memory.held = tensor

    def _check_adoptable(self, tensor: torch.Tensor) -> None:
        if tuple(tensor.shape) != self._shape or tensor.dtype != self.dtype:
            raise ValueError(f"cannot adopt a {tensor.dtype} tensor of shape {tuple(tensor.shape)} into "
                             f"a {self.dtype} blob of shape {self._shape}")

    def _view_shape(self) -> tuple[int, ...]:
        # a default Blob() has no shape yet and no elements: present it as an empty vector
        return self._shape if self._count or self._shape else (0,)

    @property
    def has_data(self) -> bool:
        """Whether data memory is allocated (it is on first use of ``data``; ``release_data`` frees it)."""
        return self._data_mem.allocated

    @property
    def has_diff(self) -> bool:
        """Whether diff storage has been allocated (it is on first use of ``diff``)."""
        return self._diff_mem.allocated

    def data_storage_key(self) -> int:
        """Equal for blobs whose data is one storage (``share_data``)."""
        return id(self._data_mem)

    def release_data(self) -> None:
        """Free the data's memory; it reads as zeros when next used (deploy mode calls this once no
        layer will read the blob again; blobs sharing the storage must all be released)."""
        self._data_mem.flat = self._data_mem.held = None
        self._data_view = None

    @contextlib.contextmanager
    def overwriting_data(self) -> Iterator[torch.Tensor]:
        """``data``, for a caller that writes every value of it inside the ``with``: memory not
        allocated yet is not zero-filled first (on a fresh page that costs a second pass over it).
        If the caller fails, fresh memory is zero-filled after all: no uninitialised values stay."""
        memory = self._data_mem
        fresh = not memory.allocated
        if fresh:
            flat = torch.empty(memory.size, dtype=memory.dtype, device=memory.device)
            if memory.size > self._count:  # beyond the shape, up to the capacity: nobody writes it
                flat[self._count :].zero_()
            memory.flat = flat
            self._data_view = None
        try:
            yield self.data
        except BaseException:
            if fresh and memory.flat is not None:
                memory.flat.zero_()
            raise

    def fit_unallocated(self) -> None:
        """Size memory not allocated now (never used, or released) to the current shape instead of
        the largest one so far: after a reshape to a smaller batch, deploy mode allocates only what
        the pass needs. Blobs sharing this blob's storage must have its count."""
        if self._count < self._capacity and not (self._data_mem.allocated or self._diff_mem.allocated):
            self._capacity = self._data_mem.size = self._diff_mem.size = self._count
            self._data_view = self._diff_view = None

    def share_data(self, other: Blob) -> None:
        """Use ``other``'s data storage (counts must match), like Caffe's ShareData."""
        self._check_same_count(other)
        self._data_mem = other._data_mem
        self._data_view = None

    def share_diff(self, other: Blob) -> None:
        self._check_same_count(other)
        self._diff_mem = other._diff_mem
        self._diff_view = None

    def _check_same_count(self, other: Blob) -> None:
        if other.count() != self._count:
            raise ValueError(
                f"cannot share storage between blobs of {self._count} and {other.count()} elements"
            )

    def copy_from(self, source: Blob, copy_diff: bool = False, reshape: bool = False) -> None:
        """Copy ``source``'s data (or diff) into this blob; shapes must match unless ``reshape``."""
        if source.shape != self._shape:
            if not reshape:
                raise ValueError(
                    f"trying to copy blobs of different shapes: {source.shape} -> {self._shape}"
                )
            self.reshape_like(source)
        if copy_diff:
            self.diff.copy_(source.diff)
        else:
            self.data.copy_(source.data)

    def update(self) -> None:
        """``data -= diff`` (Blob::Update), the last step of every solver iteration."""
        self.data.sub_(self.diff)

    def asum_data(self) -> float:
        return float(self.data.abs().sum())

    def asum_diff(self) -> float:
        return float(self.diff.abs().sum())

    def sumsq_data(self) -> float:
        return float((self.data * self.data).sum())

    def sumsq_diff(self) -> float:
        return float((self.diff * self.diff).sum())

    def __repr__(self) -> str:
        return f"Blob(shape={self._shape}, dtype={self.dtype}, device={self.device})"
