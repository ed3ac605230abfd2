"""Common layers: inner product, dropout, embed."""

from recaffe.layers.common import (
    embed,  # noqa: F401
    inner_product,  # noqa: F401
)
