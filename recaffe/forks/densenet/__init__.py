"""DenseNet dialect: Pooling's ``ceil_mode`` (BVLC/caffe pull request #3057, as in
shicai/DenseNet-Caffe), read as BVLC's ``round_mode`` (true -> CEIL, false -> FLOOR)."""

from __future__ import annotations

from typing import Any

from recaffe.forks.densenet import caffe_densenet_pb2
from recaffe.forks.dialect import Dialect
from recaffe.proto import caffe_pb2

P = caffe_pb2.PoolingParameter


def _ceil_to_round(fork_layer: Any, layer: caffe_pb2.LayerParameter) -> None:
    pooling = fork_layer.pooling_param
    if fork_layer.HasField("pooling_param") and pooling.HasField("ceil_mode"):
        layer.pooling_param.round_mode = P.CEIL if pooling.ceil_mode else P.FLOOR


def _round_to_ceil(fork_layer: Any, layer: caffe_pb2.LayerParameter) -> None:
    if layer.HasField("pooling_param") and layer.pooling_param.HasField("round_mode"):
        fork_layer.pooling_param.ceil_mode = layer.pooling_param.round_mode == P.CEIL


DIALECT = Dialect(
    name="densenet",
    fork="the DenseNet fork (Pooling ceil_mode, BVLC/caffe PR #3057; shicai/DenseNet-Caffe)",
    pb2=caffe_densenet_pb2,
    lower_hook=_ceil_to_round,
    raise_hook=_round_to_ceil,
)
