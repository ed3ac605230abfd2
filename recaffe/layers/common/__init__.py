"""Common layers: inner product, dropout, embed."""

from recaffe.layers.common import (  # noqa: F401
    dropout,
    embed,
    inner_product,
)
