"""Structural layers: split, concat, slice, reshape, reductions and friends."""

from recaffe.layers.utility import (
    concat,  # noqa: F401
    eltwise,  # noqa: F401
    python,  # noqa: F401
    slice,  # noqa: F401
    softmax,  # noqa: F401
    split,  # noqa: F401
)
