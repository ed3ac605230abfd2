"""Layers that produce data: Input (the net's inputs) and the data-reading layers."""

from recaffe.layers.data import data, hdf5_data, input  # noqa: F401
