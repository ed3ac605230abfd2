"""Legacy net formats: V0 (``layers { layer { ... } }``) and V1 (``layers`` with enum types)."""

from __future__ import annotations

from recaffe.proto import caffe_pb2


def needs_v0_upgrade(param: caffe_pb2.NetParameter) -> bool:
    return any(layer.HasField("layer") for layer in param.layers)


def needs_v1_upgrade(param: caffe_pb2.NetParameter) -> bool:
    return len(param.layers) > 0


def needs_data_upgrade(param: caffe_pb2.NetParameter) -> bool:
    return False


def upgrade_v0_net(param: caffe_pb2.NetParameter, source: str) -> None:
    raise NotImplementedError("V0 upgrade: in progress")


def upgrade_data_transformation(param: caffe_pb2.NetParameter) -> None:
    raise NotImplementedError("data upgrade: in progress")


def upgrade_v1_net(param: caffe_pb2.NetParameter, source: str) -> None:
    raise NotImplementedError("V1 upgrade: in progress")
