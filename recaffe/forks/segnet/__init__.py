"""SegNet dialect: Alex Kendall's fork (github.com/alexgkendall/caffe-segnet), the Caffe of SegNet
and Bayesian SegNet: Upsample (with pooling masks), its BN (``bn_param``: LEARN / INFERENCE),
DenseImageData (image + label PNG pairs), Dropout's ``sample_weights_test`` (MC dropout), and the
training nets' SoftmaxWithLoss with class weighting and per-class Accuracy."""

from __future__ import annotations

from recaffe.forks.dialect import Dialect
from recaffe.forks.segnet import caffe_segnet_pb2

DIALECT = Dialect(
    name="segnet",
    fork="the SegNet fork (alexgkendall/caffe-segnet)",
    pb2=caffe_segnet_pb2,
    layer_types=("Upsample", "BN", "DenseImageData", "Dropout", "SoftmaxWithLoss", "Accuracy"),
)

# the layers register themselves for this dialect (after DIALECT exists: they look it up at setup)
from recaffe.forks.segnet import (  # noqa: E402,F401
    accuracy,
    bn,
    dense_image_data,
    dropout,
    softmax_loss,
    upsample,
)
