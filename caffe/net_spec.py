"""Writing nets in Python: ``caffe.layers`` (``L``), ``caffe.params`` (``P``), ``NetSpec``.

``L.Convolution(bottom, kernel_size=3, num_output=8)`` returns a ``Top``: one output of a
``Function`` (a layer with its inputs and keyword parameters). ``NetSpec`` names tops by
attribute assignment; ``to_proto`` turns the graph into a NetParameter. Keyword rules:

* ``ntop`` (default 1) is the number of tops: 1 returns a ``Top``, more a tuple of them, 0 the
  ``Function`` itself (for top-less layers such as Silence); ``in_place=True`` reuses the
  bottoms as tops.
* Keywords ending in ``param`` (``param``, ``transform_param``, ``convolution_param``...) are
  fields of the LayerParameter; any other keyword goes into the type's ``<type>_param`` when
  that message has it, else onto the LayerParameter (``loss_weight``, ``include``...).
* Lists fill repeated fields, dicts fill messages, a lone value for a repeated field is
  wrapped in a list.

Unnamed tops and layers are called ``<Type><n>`` (counted per type, in the order ``to_proto``
meets them).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable
from typing import Any

from google.protobuf import message

from recaffe.proto import caffe_pb2

__all__ = ["Function", "NetSpec", "Top", "assign_proto", "layers", "param_name_dict", "params", "to_proto"]

Names = dict[Any, str]


def param_name_dict() -> dict[str, str]:
    """Layer type -> the prefix of its parameter field, e.g. "InnerProduct" -> "inner_product"."""
    layer = caffe_pb2.LayerParameter()
    names = {}
    for field in layer.DESCRIPTOR.fields:
        if field.name.endswith("_param") and field.message_type is not None:
            type_name = field.message_type.name
            names[type_name.removesuffix("Parameter")] = field.name.removesuffix("_param")
    # types that read another type's message (pycaffe lacks these; they only add working spellings)
    names.update({"Deconvolution": "convolution", "Im2col": "convolution"})
    return names


def to_proto(*tops: Top) -> caffe_pb2.NetParameter:
    """A NetParameter with every layer needed to compute ``tops``, with generated names."""
    return _net_of(tops, {})


def _net_of(tops: Iterable[Top], names: Names) -> caffe_pb2.NetParameter:
    """The layers that compute ``tops``, in order; ``names`` gives chosen names (others generated)."""
    layers: OrderedDict[Function, caffe_pb2.LayerParameter] = OrderedDict()
    autonames: Counter[str] = Counter()
    for top in tops:
        top._to_proto(layers, names, autonames)
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers.values())
    return net


def assign_proto(proto: message.Message, name: str, val: Any) -> None:
    """Set field ``name`` of ``proto`` from a Python value (lists, dicts and scalars, recursively)."""
    field = getattr(proto, name)
    is_repeated = hasattr(field, "extend")
    if is_repeated and not isinstance(val, list):
        val = [val]
    if isinstance(val, list):
        if val and isinstance(val[0], dict):
            for item in val:
                entry = field.add()
                for key, value in item.items():
                    assign_proto(entry, key, value)
        else:
            field.extend(val)
    elif isinstance(val, dict):
        for key, value in val.items():
            assign_proto(field, key, value)
    elif isinstance(val, message.Message):
        field.CopyFrom(val)
    else:
        setattr(proto, name, val)


class Top:
    """Output ``n`` of the layer ``fn``."""

    def __init__(self, fn: Function, n: int) -> None:
        self.fn = fn
        self.n = n

    def to_proto(self) -> caffe_pb2.NetParameter:
        """A NetParameter with every layer needed to compute this top."""
        return to_proto(self)

    def _to_proto(self, layers: OrderedDict, names: Names, autonames: Counter[str]) -> None:
        self.fn._to_proto(layers, names, autonames)


class Function:
    """A layer: its type, its input ``Top``s and its keyword parameters."""

    def __init__(self, type_name: str, inputs: tuple[Any, ...], params: dict[str, Any]) -> None:
        self.type_name = type_name
        for index, bottom in enumerate(inputs):
            if not isinstance(bottom, Top):
                raise TypeError(f"{type_name} input {index} is not a Top (type is {type(bottom)})")
        self.inputs = inputs
        self.params = dict(params)
        self.ntop = self.params.pop("ntop", 1)
        self.in_place = self.params.pop("in_place", False)
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def _get_name(self, names: Names, autonames: Counter[str]) -> str:
        if self not in names:
            if self.ntop > 0:
                names[self] = self._get_top_name(self.tops[0], names, autonames)
            else:
                names[self] = _autoname(self.type_name, autonames)
        return names[self]

    def _get_top_name(self, top: Top, names: Names, autonames: Counter[str]) -> str:
        if top not in names:
            names[top] = _autoname(top.fn.type_name, autonames)
        return names[top]

    def _to_proto(self, layers: OrderedDict, names: Names, autonames: Counter[str]) -> None:
        if self in layers:
            return
        bottom_names = []
        for bottom in self.inputs:
            bottom._to_proto(layers, names, autonames)
            bottom_names.append(layers[bottom.fn].top[bottom.n])
        layer = caffe_pb2.LayerParameter(type=self.type_name, bottom=bottom_names)
        if self.in_place:
            layer.top.extend(layer.bottom)
        else:
            layer.top.extend(self._get_top_name(top, names, autonames) for top in self.tops)
        layer.name = self._get_name(names, autonames)
        for key, value in self.params.items():
            self._assign(layer, key, value)
        layers[self] = layer

    def _assign(self, layer: caffe_pb2.LayerParameter, key: str, value: Any) -> None:
        if key.endswith("param"):
            assign_proto(layer, key, value)
            return
        try:
            assign_proto(getattr(layer, _param_names[self.type_name] + "_param"), key, value)
        except (AttributeError, KeyError):
            assign_proto(layer, key, value)


def _autoname(type_name: str, autonames: Counter[str]) -> str:
    autonames[type_name] += 1
    return f"{type_name}{autonames[type_name]}"


class NetSpec:
    """Named tops: ``n.conv1 = L.Convolution(n.data, ...)``; ``n.to_proto()`` emits the net with
    every assigned top (and the layers they need), named after the attributes."""

    def __init__(self) -> None:
        super().__setattr__("tops", OrderedDict())

    def __setattr__(self, name: str, value: Any) -> None:
        self.tops[name] = value

    def __getattr__(self, name: str) -> Any:
        try:
            return self.tops[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setitem__(self, key: str, value: Any) -> None:
        self.__setattr__(key, value)

    def __getitem__(self, item: str) -> Any:
        return self.tops[item]

    def to_proto(self) -> caffe_pb2.NetParameter:
        return _net_of(self.tops.values(), {top: name for name, top in self.tops.items()})


class Layers:
    """``L.<Type>(*bottoms, **params)``: a layer of type ``<Type>`` (see the module docstring)."""

    def __getattr__(self, name: str) -> Any:
        def layer_fn(*args: Top, **kwargs: Any) -> Any:
            fn = Function(name, args, kwargs)
            if fn.ntop == 0:
                return fn
            if fn.ntop == 1:
                return fn.tops[0]
            return fn.tops
        return layer_fn


class Parameters:
    """``P.<Type>.<CONSTANT>``: the enum value ``caffe_pb2.<Type>Parameter.<CONSTANT>``."""

    def __getattr__(self, name: str) -> Any:
        message_class = getattr(caffe_pb2, name + "Parameter")

        class Param:
            def __getattr__(self, constant: str) -> Any:
                return getattr(message_class, constant)

        return Param()


_param_names = param_name_dict()
layers = Layers()
params = Parameters()
