"""Deploy mode's blob memory sized to the pass at hand (``recaffe/deploy.py`` releases each blob's
memory once no later layer reads it; this module sizes what gets allocated again).

A blob keeps the capacity of the largest shape it has had (Caffe's rule, so that memory is reused
across reshapes). A deploy prototxt declares its batch (10 for BVLC's), and a deploy-mode net
reshaped to a smaller batch would allocate each activation at the declared batch's size. Before
a pass with new input shapes, every blob whose storage is not allocated (all of them before the
first pass, the released ones after) is sized to its current shape; blobs sharing one storage are
sized together, and only when they agree on the count.
"""

from __future__ import annotations

from collections.abc import Sequence

from recaffe.blob import Blob


def fit_unallocated(blobs: Sequence[Blob]) -> None:
    """``Blob.fit_unallocated`` for every storage group whose blobs agree on their count."""
    groups: dict[int, list[Blob]] = {}
    for blob in blobs:
        groups.setdefault(blob.data_storage_key(), []).append(blob)
    for members in groups.values():
        if len({blob.count() for blob in members}) == 1:
            for blob in members:
                blob.fit_unallocated()
