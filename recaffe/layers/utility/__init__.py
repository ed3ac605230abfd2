"""Structural layers: split, concat, slice, reshape, reductions and friends."""

from recaffe.layers.utility import (
    argmax,  # noqa: F401
    batch_reindex,  # noqa: F401
    filter,  # noqa: F401
    flatten,  # noqa: F401
    reduction,  # noqa: F401
    reshape,  # noqa: F401
    silence,  # noqa: F401
    split,  # noqa: F401
    tile,  # noqa: F401
)
