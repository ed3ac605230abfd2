"""Common layers: inner product, dropout, embed."""

from recaffe.layers.common import (
    dropout,  # noqa: F401
    inner_product,  # noqa: F401
)
