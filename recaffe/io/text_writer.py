"""Protobuf text format written as Caffe's C++ ``TextFormat::Print`` writes it.

Python's printer gives the same layout but spells numbers its own way: ``lr_mult: 1.0`` where
Caffe writes ``lr_mult: 1``, ``1e+10`` as ``10000000000.0``. Here float fields use C++'s
``SimpleFtoa`` (``%.6g``, or ``%.9g`` when six digits do not give the float back) and double
fields ``SimpleDtoa`` (``%.15g``, else ``%.17g``). Strings are C-escaped, keeping UTF-8 text
readable (C++ would write it as octal escapes; both read back the same); bytes fields are
escaped whole. Fields come in field-number order, as both printers order them.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable

from google.protobuf import descriptor, message, text_encoding

FieldDescriptor = descriptor.FieldDescriptor


def _float32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


def _shortest(value: float, digits: int, more: int, same: Callable[[float], float]) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = f"{value:.{digits}g}"
    return text if same(float(text)) == same(value) else f"{value:.{more}g}"


def format_float(value: float) -> str:
    """C++ ``SimpleFtoa``: a float field's value as Caffe's prototxts spell it."""
    return _shortest(value, 6, 9, _float32)


def format_double(value: float) -> str:
    """C++ ``SimpleDtoa``: a double field's value as Caffe's prototxts spell it."""
    return _shortest(value, 15, 17, float)


def _value(field: FieldDescriptor, value: object) -> str:
    if field.cpp_type == FieldDescriptor.CPPTYPE_FLOAT:
        return format_float(float(value))  # type: ignore[arg-type]
    if field.cpp_type == FieldDescriptor.CPPTYPE_DOUBLE:
        return format_double(float(value))  # type: ignore[arg-type]
    if field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        return "true" if value else "false"
    if field.cpp_type == FieldDescriptor.CPPTYPE_ENUM:
        number = int(value)  # type: ignore[call-overload]
        enum_value = field.enum_type.values_by_number.get(number) if field.enum_type else None
        return enum_value.name if enum_value is not None else str(number)
    if field.cpp_type == FieldDescriptor.CPPTYPE_STRING:
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)  # type: ignore[call-overload]
        return f'"{text_encoding.CEscape(raw, as_utf8=field.type == FieldDescriptor.TYPE_STRING)}"'
    return str(value)


def _write(msg: message.Message, indent: str, out: list[str]) -> None:
    for field, value in msg.ListFields():
        values = value if field.is_repeated else [value]
        for item in values:
            if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
                out.append(f"{indent}{field.name} {{\n")
                _write(item, indent + "  ", out)
                out.append(f"{indent}}}\n")
            else:
                out.append(f"{indent}{field.name}: {_value(field, item)}\n")


def message_to_text(msg: message.Message) -> str:
    """``msg`` in protobuf text format, spelled as Caffe's C++ tools write it."""
    out: list[str] = []
    _write(msg, "", out)
    return "".join(out)
