"""ViewLayer: the base of layers whose top is the bottom under another shape (no copy)."""

from __future__ import annotations

from collections.abc import Sequence

from recaffe.blob import Blob
from recaffe.layer import Blobs, Layer


def share_view(bottom: Blob, top: Blob, shape: Sequence[int]) -> None:
    """Make ``top`` the bottom under ``shape``: it shares the bottom's data and diff (no copy)."""
    top.reshape(shape)
    top.share_data(bottom)
    top.share_diff(bottom)


class ViewLayer(Layer):
    """One bottom, one top sharing the bottom's data and diff; forward and backward do nothing.

    Subclasses compute the top's shape in ``reshape`` and call ``share_view(bottom[0], top[0],
    shape)``. In-place use is refused (Caffe CHECKs top != bottom).
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        pass  # the top already shares the bottom's data

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        pass  # the bottom's diff is the top's diff
