"""Structural layers: split, concat, slice, reshape, reductions and friends."""

from recaffe.layers.utility import (  # noqa: F401
    argmax,
    batch_reindex,
    concat,
    eltwise,
    filter,
    flatten,
    python,
    reduction,
    reshape,
    silence,
    slice,
    softmax,
    split,
    tile,
)
