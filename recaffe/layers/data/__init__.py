"""Layers that produce data: Input (the net's inputs) and the data-reading layers."""

from recaffe.layers.data import (  # noqa: F401
    dummy_data,
    input,
    parameter,
)
