"""Layers that produce data: Input (the net's inputs) and the data-reading layers."""

from recaffe.layers.data import (
    dummy_data,  # noqa: F401
    input,  # noqa: F401
)
