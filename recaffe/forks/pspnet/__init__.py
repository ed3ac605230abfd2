"""PSPNet dialect: Hengshuang Zhao's fork (github.com/hszhao/PSPNet): BN (``bn_param``) and Interp."""

from __future__ import annotations

from recaffe.forks.dialect import Dialect
from recaffe.forks.pspnet import caffe_pspnet_pb2

DIALECT = Dialect(
    name="pspnet",
    fork="the PSPNet fork (hszhao/PSPNet)",
    pb2=caffe_pspnet_pb2,
    layer_types=("BN", "Interp"),
)

# the layers register themselves for this dialect (after DIALECT exists: they look it up at setup)
from recaffe.forks.pspnet import bn, interp  # noqa: E402,F401
