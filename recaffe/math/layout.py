"""The memory layout the vision layers compute 4-D activations in.

On the CPU, oneDNN's convolutions and torch's pooling kernels are vectorised over channels and run
fastest on channels-last (NHWC) tensors; torch's row-major (NCHW) pooling kernels are several times
slower. These layers therefore take their bottoms as held (``Blob.strided_data``), bring them to
channels-last, and hand their tops over in that layout (``store``, which adopts them), so a chain
of them never converts; a blob is copied back to row-major order only when someone reads its
``data``. On other devices (CUDA) tensors keep the layout they come in, and ``store`` copies
row-major results into the blob's own storage as before.
"""

from __future__ import annotations

import torch

from recaffe.blob import Blob

# Below this many channels, converting a row-major tensor costs more than the faster kernel saves.
MIN_CHANNELS = 4


def use_channels_last(x: torch.Tensor) -> bool:
    """Whether 4-D (N, C, H, W) work on ``x`` runs channels-last (on the CPU)."""
    return x.dim() == 4 and x.device.type == "cpu"


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` (N, C, H, W) with channels-last strides. With one channel both layouts hold the same
    memory, and torch reads a contiguous tensor as row-major; the explicit strides make its kernels
    answer in channels-last too."""
    x = x.contiguous(memory_format=torch.channels_last)
    n, c, h, w = x.shape
    if c == 1 and x.stride(1) != 1:
        x = x.as_strided(x.shape, (h * w, 1, w, 1))
    return x


def template(x: torch.Tensor) -> torch.Tensor:
    """A tensor shaped like ``x`` in the layout of ``preferred(x)``, for the backward kernels that read
    their bottom only for its shape and layout: ``x`` itself when no copy is needed, else uninitialised."""
    if not preferred_layout_is_channels_last(x):
        return x
    if x.is_contiguous(memory_format=torch.channels_last):
        return to_channels_last(x)
    return torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)


def preferred_layout_is_channels_last(x: torch.Tensor) -> bool:
    """Under ``use_channels_last``, unless ``x`` is row-major with fewer than ``MIN_CHANNELS`` channels."""
    return use_channels_last(x) and (
        x.shape[1] >= MIN_CHANNELS or x.is_contiguous(memory_format=torch.channels_last))


def preferred(x: torch.Tensor) -> torch.Tensor:
    """``x`` converted to channels-last where that pays (``preferred_layout_is_channels_last``)."""
    return to_channels_last(x) if preferred_layout_is_channels_last(x) else x


def reuse(buffer: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """``buffer`` when it has ``like``'s shape, strides and dtype (written over: no allocation and
    no page faults, as Caffe reuses its buffers), else a new tensor laid out like ``like``."""
    if (buffer is not None and buffer.shape == like.shape and buffer.stride() == like.stride()
            and buffer.dtype == like.dtype):
        return buffer
    return torch.empty_like(like)


def output(blob: Blob, like: torch.Tensor, diff: bool = False) -> torch.Tensor:
    """Memory to compute the blob's next data (or diff) into, shaped and laid out like ``like``:
    the blob's own current memory when it has that layout (``reuse``). Hand it over with ``store``.
    A blob without memory (released in deploy mode) gets none for an output that ``store`` adopts."""
    if not like.is_contiguous() and not (blob.has_diff if diff else blob.has_data):
        return torch.empty_like(like)
    return reuse(blob.strided_diff() if diff else blob.strided_data(), like)


def store(blob: Blob, value: torch.Tensor, diff: bool = False) -> None:
    """Hand ``value`` (the blob's shape) to the blob as its data (or diff): copied into the row-major
    storage when it is row-major itself, so views of that storage stay current; else adopted in its
    own layout, without a conversion. A tensor from ``output`` that is the storage already stays."""
    if value.is_contiguous():
        target = blob.diff if diff else blob.data
        if target.data_ptr() != value.data_ptr():
            target.copy_(value)
    else:
        (blob.adopt_diff if diff else blob.adopt_data)(value)
