"""The dialects recaffe knows (loaded on first use), the default one, and what a lowered layer carries."""


from __future__ import annotations

import importlib

from recaffe.forks.dialect import Dialect, carried_fields

BVLC = "bvlc"
DIALECT_PACKAGES = ("ssd", "densenet", "pspnet", "faster_rcnn", "segnet")

# Fork fields and layer types recaffe does not read yet, so errors can still name their fork.
NOT_YET: dict[str, str] = {
    "noise_param": "the SSD fork's (weiliu89/caffe) transform_param noise",
}

_loaded: dict[str, Dialect] = {}
_default: list[str | None] = [None]


def dialects() -> list[Dialect]:
    """Every dialect recaffe knows, loading their packages (schemas and layers) on first use."""
    for name in DIALECT_PACKAGES:
        if name not in _loaded:
            module = importlib.import_module(f"recaffe.forks.{name}")
            _loaded[name] = module.DIALECT
    return [_loaded[name] for name in DIALECT_PACKAGES]


def get_dialect(name: str) -> Dialect:
    known = {d.name: d for d in dialects()}
    if name not in known:
        raise ValueError(f"unknown dialect {name!r} (known: {BVLC}, {', '.join(known)})")
    return known[name]


def set_default_dialect(name: str | None) -> None:
    """The dialect prototxts are read in when none is named (``--dialect``); None: detect."""
    if name is not None and name != BVLC:
        get_dialect(name)
    _default[0] = name


def default_dialect() -> str | None:
    return _default[0]


def layer_dialect(layer: object) -> str | None:
    """The dialect a lowered LayerParameter carries, or None for BVLC's."""
    from recaffe.proto import caffe_pb2

    if not isinstance(layer, caffe_pb2.LayerParameter):
        return None
    carried = carried_fields(layer)
    return carried.dialect if carried is not None else None
