"""Text and binary protobuf files (prototxt, caffemodel, solverstate), read through protobuf itself.

Errors name the file; text-format errors also carry protobuf's line and column.
"""

from __future__ import annotations

import os
import re
from typing import Protocol, TypeVar

from google.protobuf import message, text_format

from recaffe import errors
from recaffe.io import atomic, text_writer
from recaffe.proto import caffe_pb2

M = TypeVar("M", bound=message.Message)
PathLike = str | os.PathLike[str]


class ProtoFileError(errors.FileReadError):
    """A Caffe file could not be read or parsed; the message names the file."""


def read_bytes(path: PathLike) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ProtoFileError(f"cannot open {os.fspath(path)!r}: {e.strerror}", path) from e


def parse_text(text: str, msg: M, source: str = "<string>") -> M:
    """Parse protobuf text format into ``msg``; errors read ``source:line:column: problem``."""
    try:
        text_format.Parse(text, msg, allow_unknown_extension=False)
    except text_format.ParseError as e:
        raise parse_error(e, msg, source) from e
    return msg


def parse_error(e: text_format.ParseError, msg: message.Message, source: str) -> ProtoFileError:
    """``source:line:column: cannot parse as Message: problem`` for protobuf's text ParseError."""
    where = f"{e.GetLine()}:{e.GetColumn()}" if e.GetLine() is not None else "?"
    detail = str(e).split(" : ", 1)[-1] if ":" in str(e) else str(e)
    return ProtoFileError(f"{source}:{where}: cannot parse as {msg.DESCRIPTOR.name}: {detail}")


def read_text(path: PathLike, msg: M) -> M:
    return parse_text(read_text_data(path, msg.DESCRIPTOR.name), msg, os.fspath(path))


def read_text_data(path: PathLike, message_name: str) -> str:
    """The text of a file to be parsed as ``message_name``; an error if it is binary or not UTF-8."""
    data = read_bytes(path)
    if looks_binary(data):
        raise ProtoFileError(
            f"{os.fspath(path)!r} is not a text {message_name}: it holds binary data "
            f"(a .caffemodel or .binaryproto is read as binary, e.g. as weights)"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProtoFileError(f"{os.fspath(path)!r}: not UTF-8 text (byte {e.start})") from e


def read_binary(path: PathLike, msg: M) -> M:
    return parse_binary(read_bytes(path), msg, path)


def parse_binary(data: bytes, msg: M, path: PathLike) -> M:
    """Parse serialised bytes read from ``path`` into ``msg``."""
    try:
        msg.ParseFromString(data)
    except (message.DecodeError, RecursionError, ValueError) as e:
        raise not_binary_error(path, msg.DESCRIPTOR.name, str(e), data) from e
    return msg


def not_binary_error(path: PathLike, message_name: str, problem: str, head: bytes) -> ProtoFileError:
    """The error for a file that does not parse as a binary ``message_name``; ``head``, the file's
    first bytes, tells whether it is a text prototxt given instead."""
    hint = f" This is a text prototxt, not {BINARY_FILES.get(message_name, 'a binary file')}." \
        if not looks_binary(head) else ""
    return ProtoFileError(f"{os.fspath(path)!r} is not a binary {message_name} ({problem}).{hint}", path)


# what a binary file of each message is called, for the error when a text prototxt is given instead
BINARY_FILES = {"NetParameter": "a caffemodel (weights; a net's prototxt only describes it)",
                "SolverState": "a solverstate", "BlobProto": "a binaryproto (e.g. a mean file)"}

_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")


def looks_binary(data: bytes, head: int = 1 << 16) -> bool:
    """True if the start of ``data`` is not UTF-8 text (control bytes, or invalid UTF-8)."""
    start = data[:head]
    if _CONTROL_BYTES.search(start):
        return True
    try:
        start.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start < len(start) - 3  # a multi-byte character cut by the slice is fine
    return False


def write_text(path: PathLike, msg: message.Message) -> None:
    """Write ``msg`` as text, atomically (``recaffe.io.atomic``)."""
    atomic.write_bytes(path, to_text(msg).encode("utf-8"), f"{msg.DESCRIPTOR.name} file")


def write_binary(path: PathLike, msg: message.Message) -> None:
    """Write ``msg`` serialised, atomically (``recaffe.io.atomic``)."""
    atomic.write_bytes(path, msg.SerializeToString(), f"{msg.DESCRIPTOR.name} file")


def to_text(msg: message.Message) -> str:
    """``msg`` in text format as Caffe writes it (``lr_mult: 1``, not ``1.0``)."""
    return text_writer.message_to_text(msg)


class DialectReader(Protocol):
    """Reads nets in the Caffe forks' dialects (``recaffe.forks.reading``)."""

    def parse_net_text(self, text: str, source: str,
                       dialect: str | None = None) -> caffe_pb2.NetParameter: ...

    def read_net_binary(self, path: PathLike, dialect: str) -> caffe_pb2.NetParameter: ...

    def parse_solver_text(self, text: str, source: str) -> caffe_pb2.SolverParameter: ...


# Installed by recaffe.forks, which the recaffe package always imports: the Caffe forks' dialects
# plug in here without this module depending on them. None: BVLC's schema only.
dialect_reader: DialectReader | None = None


def read_net_param(path: PathLike, dialect: str | None = None) -> caffe_pb2.NetParameter:
    """A net definition from a text prototxt, upgraded from legacy formats as Caffe does.

    A Caffe fork's prototxt is read in its dialect (detected, or named by ``dialect``) and
    lowered to BVLC's messages: see ``recaffe.forks``.
    """
    from recaffe.io import upgrade

    if dialect_reader is None:
        param = read_text(path, caffe_pb2.NetParameter())
    else:
        param = dialect_reader.parse_net_text(read_text_data(path, "NetParameter"), os.fspath(path), dialect)
    return upgrade.upgrade_net(param, os.fspath(path))


def read_net_weights(path: PathLike, dialect: str | None = None) -> caffe_pb2.NetParameter:
    """A binary NetParameter (``.caffemodel``), upgraded from legacy formats as Caffe does.

    With ``dialect`` (a fork's name), field numbers are read as that fork defines them.
    """
    from recaffe.io import upgrade

    if dialect is None or dialect_reader is None:
        param = read_binary(path, caffe_pb2.NetParameter())
    else:
        param = dialect_reader.read_net_binary(path, dialect)
    return upgrade.upgrade_net(param, os.fspath(path))


def read_solver_param(path: PathLike) -> caffe_pb2.SolverParameter:
    """A solver definition from a text prototxt, upgraded (solver_type -> type) as Caffe does.

    A fork's solver fields (SSD's ``eval_type``/``ap_version``) are read in its dialect and carried
    along: see ``recaffe.forks``.
    """
    from recaffe.io import upgrade

    if dialect_reader is None:
        param = read_text(path, caffe_pb2.SolverParameter())
    else:
        param = dialect_reader.parse_solver_text(read_text_data(path, "SolverParameter"), os.fspath(path))
    return upgrade.upgrade_solver(param, os.fspath(path))
