"""Common layers: inner product, dropout, embed."""

from recaffe.layers.common import inner_product  # noqa: F401
