"""Caffe's proto upgrades (UpgradeNetAsNeeded, UpgradeSolverAsNeeded), applied on every read.

Net upgrades, in Caffe's order: V0 layers -> V1 (``legacy.upgrade_v0_net``), old data-transform
fields -> ``transform_param``, V1 ``layers`` -> ``layer`` (``legacy.upgrade_v1_net``), net-level
``input``/``input_shape``/``input_dim`` -> an ``Input`` layer named "input", and BatchNorm layers
with three ``param`` entries -> lr_mult = decay_mult = 0.
"""

from __future__ import annotations

import logging
import os

from recaffe.io import legacy
from recaffe.proto import caffe_pb2

log = logging.getLogger(__name__)

_SOLVER_TYPES = {
    caffe_pb2.SolverParameter.SGD: "SGD",
    caffe_pb2.SolverParameter.NESTEROV: "Nesterov",
    caffe_pb2.SolverParameter.ADAGRAD: "AdaGrad",
    caffe_pb2.SolverParameter.RMSPROP: "RMSProp",
    caffe_pb2.SolverParameter.ADADELTA: "AdaDelta",
    caffe_pb2.SolverParameter.ADAM: "Adam",
}


def net_needs_upgrade(param: caffe_pb2.NetParameter) -> bool:
    return (
        legacy.needs_v0_upgrade(param)
        or legacy.needs_v1_upgrade(param)
        or legacy.needs_data_upgrade(param)
        or needs_input_upgrade(param)
        or needs_batch_norm_upgrade(param)
    )


def upgrade_net(param: caffe_pb2.NetParameter, source: str = "<net>") -> caffe_pb2.NetParameter:
    """Upgrade ``param`` in place from any legacy format Caffe reads; returns it."""
    if legacy.needs_v0_upgrade(param):
        log.info("Upgrading V0LayerParameter net: %s", source)
        if not legacy.upgrade_v0_net(param, source):
            log.warning("%s: problems upgrading the V0 net (see above); continuing anyway", source)
    if legacy.needs_data_upgrade(param):
        log.info("Upgrading deprecated data transformation fields: %s", source)
        legacy.upgrade_data_transformation(param)
    if legacy.needs_v1_upgrade(param):
        log.info("Upgrading V1LayerParameter net: %s", source)
        if not legacy.upgrade_v1_net(param, source):
            log.warning("%s: problems upgrading the V1 net (see above); continuing anyway", source)
    if needs_input_upgrade(param):
        log.info("Upgrading deprecated input fields to an Input layer: %s", source)
        upgrade_input(param, source)
    if needs_batch_norm_upgrade(param):
        log.info("Upgrading BatchNorm layers with deprecated params: %s", source)
        upgrade_batch_norm(param)
    return param


def needs_input_upgrade(param: caffe_pb2.NetParameter) -> bool:
    return len(param.input) > 0


def upgrade_input(param: caffe_pb2.NetParameter, source: str = "<net>") -> None:
    """Net-level inputs become an ``Input`` layer named "input" at the front of the net.

    A bare ``input`` with no shapes (as legacy caffemodels hold) is simply dropped.
    """
    if param.input_shape or param.input_dim:
        if param.input_dim and len(param.input_dim) != 4 * len(param.input):
            raise ValueError(
                f"{source}: {len(param.input)} input(s) need {4 * len(param.input)} input_dim "
                f"values, got {len(param.input_dim)}"
            )
        if param.input_shape and len(param.input_shape) != len(param.input):
            raise ValueError(
                f"{source}: {len(param.input)} input(s) need as many input_shape entries, "
                f"got {len(param.input_shape)}"
            )
        layer = caffe_pb2.LayerParameter(name="input", type="Input")
        for i, name in enumerate(param.input):
            layer.top.append(name)
            shape = layer.input_param.shape.add()
            if param.input_shape:
                shape.CopyFrom(param.input_shape[i])
            else:
                shape.dim.extend(param.input_dim[4 * i : 4 * i + 4])
        layers = [layer, *param.layer]
        del param.layer[:]
        param.layer.extend(layers)
    param.ClearField("input")
    param.ClearField("input_shape")
    param.ClearField("input_dim")


def needs_batch_norm_upgrade(param: caffe_pb2.NetParameter) -> bool:
    return any(layer.type == "BatchNorm" and len(layer.param) == 3 for layer in param.layer)


def upgrade_batch_norm(param: caffe_pb2.NetParameter) -> None:
    for layer in param.layer:
        if layer.type == "BatchNorm" and len(layer.param) == 3:
            for spec in layer.param:
                spec.lr_mult = 0.0
                spec.decay_mult = 0.0


def upgrade_solver(
    param: caffe_pb2.SolverParameter, source: str | None = None
) -> caffe_pb2.SolverParameter:
    """``solver_type`` enum -> ``type`` string; default ``snapshot_prefix`` from the file name."""
    if param.HasField("solver_type"):
        if param.HasField("type"):
            raise ValueError(
                f"{source or '<solver>'}: solver_type (enum) and type (string) cannot both be given"
            )
        param.type = _SOLVER_TYPES[param.solver_type]
        param.ClearField("solver_type")
    if source is not None:
        upgrade_snapshot_prefix(param, source)
    return param


def upgrade_snapshot_prefix(param: caffe_pb2.SolverParameter, source: str) -> None:
    """Unset prefix: the solver file without its extension; a directory: ``dir/<solver stem>``."""
    stem = os.path.splitext(source)[0]
    if not param.HasField("snapshot_prefix"):
        param.snapshot_prefix = stem
    elif os.path.isdir(param.snapshot_prefix):
        param.snapshot_prefix = os.path.join(param.snapshot_prefix, os.path.basename(stem))
