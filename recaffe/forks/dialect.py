"""Dialect: one Caffe fork's schema and layers, and how its LayerParameters travel through the core.

recaffe's core (Net, Layer, the readers) works on BVLC's ``caffe_pb2`` messages only. A fork's
prototxt or caffemodel is read with the fork's own message family (``caffe_<dialect>_pb2``:
BVLC's schema plus the fork's fields, numbers as the fork has them), then *lowered*: each
LayerParameter becomes a BVLC LayerParameter holding every BVLC field, and the fork's own fields
ride along in one carrier field BVLC does not declare (``carrier.proto``), with the dialect's
name. Fork layers read their parameters back with :meth:`Dialect.fork_param`; the Net picks a
layer's class from the dialect its carrier names. :meth:`Dialect.raise_net` turns a lowered
NetParameter back into the fork's own encoding, field numbers and all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from google.protobuf import descriptor, message

from recaffe.forks import carrier_pb2
from recaffe.proto import caffe_pb2

Hook = Callable[[Any, caffe_pb2.LayerParameter], None]


@dataclass(frozen=True)
class Dialect:
    """A Caffe fork recaffe can read: its message family, layer types and field mappings.

    ``lower_hook(fork_layer, bvlc_layer)`` sets BVLC fields that mean what a fork field means
    (DenseNet's ``ceil_mode`` -> ``round_mode``); ``raise_hook`` does the reverse on the fork's
    LayerParameter being rebuilt from a BVLC one.
    """

    name: str
    fork: str
    pb2: ModuleType
    layer_types: tuple[str, ...] = ()
    lower_hook: Hook | None = None
    raise_hook: Hook | None = None
    notes: str = ""
    _fork_only: dict[str, set[str]] = field(default_factory=dict, compare=False, repr=False)

    # ------------------------------------------------------------- schema
    @property
    def package(self) -> str:
        return str(self.pb2.DESCRIPTOR.package)

    def net_parameter(self) -> Any:
        """An empty NetParameter of this dialect."""
        return self.pb2.NetParameter()

    def layer_parameter(self) -> Any:
        return self.pb2.LayerParameter()

    def fork_fields(self, message_descriptor: Any) -> set[str]:
        """Fields of a dialect message that BVLC's same message lacks (or numbers differently)."""
        key = message_descriptor.full_name
        if key not in self._fork_only:
            bvlc = _bvlc_counterpart(message_descriptor, self.package)
            self._fork_only[key] = {f.name for f in message_descriptor.fields
                                    if bvlc is None or not _same_field(f, bvlc.fields_by_name.get(f.name))}
        return self._fork_only[key]

    def all_fork_fields(self) -> dict[str, str]:
        """Every fork field of the dialect's messages shared with BVLC: name -> ``Message.field``."""
        found: dict[str, str] = {}
        for msg in self.pb2.DESCRIPTOR.message_types_by_name.values():
            if _bvlc_counterpart(msg, self.package) is None:
                continue
            for name in self.fork_fields(msg):
                found.setdefault(name, f"{msg.name}.{name}")
        return found

    # ------------------------------------------------------ lower / raise
    def lower_layer(self, fork_layer: Any) -> caffe_pb2.LayerParameter:
        """A BVLC LayerParameter for ``fork_layer``, carrying the fork's fields (see module doc)."""
        rest = self.layer_parameter()
        rest.CopyFrom(fork_layer)
        own = self.layer_parameter()
        self._split(rest, own)
        out = caffe_pb2.LayerParameter.FromString(rest.SerializeToString())
        if self.lower_hook is not None:
            self.lower_hook(fork_layer, out)
        if own.ListFields() or fork_layer.type in self.layer_types:
            carried = carrier_pb2.CarrierLayer()
            carried.fork_fields.dialect = self.name
            carried.fork_fields.layer = own.SerializeToString()
            out.MergeFromString(carried.SerializeToString())
        return out

    def lower_net(self, fork_net: Any) -> caffe_pb2.NetParameter:
        net = self.net_parameter()
        net.CopyFrom(fork_net)
        del net.layer[:]
        out = caffe_pb2.NetParameter.FromString(net.SerializeToString())
        for layer in fork_net.layer:
            out.layer.append(self.lower_layer(layer))
        return out

    def fork_param(self, layer: caffe_pb2.LayerParameter) -> Any:
        """The fork's fields a lowered LayerParameter carries, as this dialect's LayerParameter."""
        own = self.layer_parameter()
        carried = carried_fields(layer)
        if carried is not None and carried.dialect == self.name:
            own.ParseFromString(carried.layer)
        return own

    def lower_solver(self, fork_solver: Any) -> caffe_pb2.SolverParameter:
        """A BVLC SolverParameter for the dialect's one, carrying the fork's solver fields."""
        rest = self.pb2.SolverParameter()
        rest.CopyFrom(fork_solver)
        own = self.pb2.SolverParameter()
        self._split(rest, own)
        out = caffe_pb2.SolverParameter.FromString(rest.SerializeToString())
        if own.ListFields():
            carried = carrier_pb2.CarrierLayer()
            carried.fork_fields.dialect = self.name
            carried.fork_fields.layer = own.SerializeToString()
            out.MergeFromString(carried.SerializeToString())
        return out

    def fork_solver_param(self, solver: caffe_pb2.SolverParameter) -> Any:
        """The fork's solver fields a lowered SolverParameter carries, as this dialect's message."""
        own = self.pb2.SolverParameter()
        carried = carried_fields(solver)
        if carried is not None and carried.dialect == self.name:
            own.ParseFromString(carried.layer)
        return own

    def raise_layer(self, layer: caffe_pb2.LayerParameter) -> Any:
        """The fork's own LayerParameter for a lowered one: BVLC fields plus the carried fork fields."""
        bvlc = caffe_pb2.LayerParameter()
        bvlc.CopyFrom(layer)
        bvlc.DiscardUnknownFields()
        out = self.layer_parameter()
        out.ParseFromString(bvlc.SerializeToString())
        self._clear_collisions(out)
        if self.raise_hook is not None:
            self.raise_hook(out, layer)
        out.MergeFrom(self.fork_param(layer))
        return out

    def raise_net(self, net: caffe_pb2.NetParameter) -> Any:
        head = caffe_pb2.NetParameter()
        head.CopyFrom(net)
        del head.layer[:]
        out = self.net_parameter()
        out.ParseFromString(head.SerializeToString())
        for layer in net.layer:
            out.layer.append(self.raise_layer(layer))
        return out

    def _split(self, msg: message.Message, own: message.Message) -> None:
        """Move the fork's fields of ``msg`` (recursing into singular BVLC sub-messages) into ``own``."""
        fork_names = self.fork_fields(msg.DESCRIPTOR)
        for fd, value in msg.ListFields():
            if fd.name in fork_names:
                target = getattr(own, fd.name)
                if fd.is_repeated:
                    target.extend(value)
                elif fd.message_type is not None:
                    target.CopyFrom(value)
                else:
                    setattr(own, fd.name, value)
                msg.ClearField(fd.name)
            elif fd.message_type is not None and not fd.is_repeated:
                self._split(value, getattr(own, fd.name))
                if not getattr(own, fd.name).ListFields():
                    own.ClearField(fd.name)

    def _clear_collisions(self, msg: message.Message) -> None:
        """Clear fork fields that a BVLC field's bytes landed in (same number, other meaning)."""
        bvlc = _bvlc_counterpart(msg.DESCRIPTOR, self.package)
        fork_names = self.fork_fields(msg.DESCRIPTOR)
        for fd, value in msg.ListFields():
            if fd.name in fork_names:
                if bvlc is not None and fd.number in bvlc.fields_by_number:
                    msg.ClearField(fd.name)
            elif fd.message_type is not None and not fd.is_repeated:
                self._clear_collisions(value)


def carried_fields(layer: message.Message) -> carrier_pb2.ForkFields | None:
    """The carrier of a lowered LayerParameter (or SolverParameter), or None for a plain BVLC one."""
    carried = carrier_pb2.CarrierLayer.FromString(layer.SerializeToString())
    return carried.fork_fields if carried.HasField("fork_fields") else None


def _bvlc_counterpart(msg: Any, package: str) -> descriptor.Descriptor | None:
    relative = msg.full_name[len(package) + 1:]
    try:
        return caffe_pb2.DESCRIPTOR.pool.FindMessageTypeByName(f"caffe.{relative}")
    except KeyError:
        return None


def _same_field(fork: descriptor.FieldDescriptor, bvlc: descriptor.FieldDescriptor | None) -> bool:
    if bvlc is None or fork.number != bvlc.number or fork.type != bvlc.type:
        return False
    if fork.message_type is not None and bvlc.message_type is not None:
        return fork.message_type.name == bvlc.message_type.name
    return True
