"""NeuronLayer: the base of element-wise layers (one bottom, one top of the same shape)."""

from __future__ import annotations

from recaffe.layer import Blobs, Layer


class NeuronLayer(Layer):
    """One bottom, one top shaped like it; in-place use allowed unless a subclass says otherwise."""

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        top[0].reshape_like(bottom[0])
