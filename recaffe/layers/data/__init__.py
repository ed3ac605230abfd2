"""Layers that produce data: Input (the net's inputs) and the data-reading layers."""

from recaffe.layers.data import (  # noqa: F401
    data,
    dummy_data,
    hdf5_data,
    hdf5_output,
    image_data,
    input,
    memory_data,
    parameter,
    window_data,
)
