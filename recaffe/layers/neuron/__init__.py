"""Element-wise (neuron) layers."""

from recaffe.layers.neuron import (
    absval,  # noqa: F401
    bnll,  # noqa: F401
    clip,  # noqa: F401
    elu,  # noqa: F401
    exp,  # noqa: F401
    log,  # noqa: F401
    power,  # noqa: F401
    prelu,  # noqa: F401
    relu,  # noqa: F401
    sigmoid,  # noqa: F401
    swish,  # noqa: F401
    tanh,  # noqa: F401
    threshold,  # noqa: F401
)
