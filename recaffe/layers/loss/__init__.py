"""Loss layers and Accuracy."""

from recaffe.layers.loss import (  # noqa: F401
    accuracy,
    contrastive_loss,
    euclidean_loss,
    hinge_loss,
    infogain_loss,
    multinomial_logistic_loss,
    sigmoid_cross_entropy_loss,
    softmax_loss,
)
