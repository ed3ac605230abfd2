"""Every registered layer type, grouped as in Caffe's documentation.

Importing this package registers them all; each group's ``__init__`` lists its modules
explicitly, so these imports are the registration manifest.
"""

from recaffe.layers import (  # noqa: F401
    common,
    data,
    loss,
    neuron,
    normalization,
    recurrent,
    utility,
    vision,
)
