"""Layers that produce data: Input (the net's inputs) and the data-reading layers."""

from recaffe.layers.data import (
    input,  # noqa: F401
    parameter,  # noqa: F401
)
