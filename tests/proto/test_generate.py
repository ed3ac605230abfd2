"""The committed type stub ``caffe_pb2.pyi`` matches ``caffe.proto`` (regenerate with
``python -m recaffe.proto.generate`` after editing the schema)."""

from __future__ import annotations

import ast
import pathlib

from google.protobuf import descriptor

from recaffe.proto import caffe_pb2

STUB = pathlib.Path(caffe_pb2.__file__).with_suffix(".pyi")


def _stub_classes() -> dict[str, set[str]]:
    """Dotted class name -> the names it declares (``X_FIELD_NUMBER`` constants among them)."""
    classes: dict[str, set[str]] = {}

    def walk(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                name = f"{prefix}{node.name}"
                classes[name] = {t.target.id for t in node.body
                                 if isinstance(t, ast.AnnAssign) and isinstance(t.target, ast.Name)}
                walk(node.body, f"{name}.")

    walk(ast.parse(STUB.read_text()).body, "")
    return classes


def _messages(message: descriptor.Descriptor, prefix: str = "") -> list[tuple[str, descriptor.Descriptor]]:
    name = f"{prefix}{message.name}"
    found = [(name, message)]
    for nested in message.nested_types:
        found += _messages(nested, f"{name}.")
    return found


def test_stub_declares_every_message_and_field() -> None:
    classes = _stub_classes()
    for top in caffe_pb2.DESCRIPTOR.message_types_by_name.values():
        for name, message in _messages(top):
            assert name in classes, f"caffe_pb2.pyi lacks message {name}: regenerate it"
            want = {f"{field.name.upper()}_FIELD_NUMBER" for field in message.fields}
            missing = want - classes[name]
            assert not missing, f"caffe_pb2.pyi: {name} lacks {sorted(missing)}: regenerate it"
            stale = {n for n in classes[name] if n.endswith("_FIELD_NUMBER")} - want
            assert not stale, f"caffe_pb2.pyi: {name} declares removed fields {sorted(stale)}: regenerate it"
