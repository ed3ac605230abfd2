"""The registered solvers and learning-rate policies; importing this package registers them all.

The imports below are the registration manifest.
"""

from recaffe.solvers import (  # noqa: F401
    adadelta,
    adagrad,
    adam,
    lr_policies,
    nesterov,
    rmsprop,
    sgd,
)
