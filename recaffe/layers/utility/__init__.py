"""Structural layers: split, concat, slice, reshape, reductions and friends."""

from recaffe.layers.utility import split  # noqa: F401
