"""Parsed prototxts kept on disk, as protobuf's binary form of what its text parser gave.

protobuf's text parser is pure Python (its C backend, upb, parses only the binary format): a
35 KB prototxt such as GoogLeNet's takes ~20 ms to parse, where the binary form of the same
message parses in ~0.03 ms. A net that is built in a fresh process again and again (a server
started, a script run) pays that every time. So once protobuf's text parser has read a net
cleanly in BVLC's schema, its result is written, serialised by protobuf, to a cache folder,
named by the SHA-256 of the text and of the compiled schema (and checked by the SHA-256 of its
contents); the next read of the same text parses that file with protobuf's binary parser
instead. The message is the same either way:
binary serialisation keeps every field and its presence, and the float values the text gave.

Only clean BVLC parses are kept (no unknown field, every layer type known): a fork's dialect,
an error or a detected dialect is parsed as before. The folder is ``$RECAFFE_PROTOTXT_CACHE``,
else ``$XDG_CACHE_HOME/recaffe/prototxt``, else ``~/.cache/recaffe/prototxt``;
``RECAFFE_PROTOTXT_CACHE=off`` turns the cache off. A folder that cannot be written, or an
entry that cannot be read, only means parsing the text: the cache never fails a read. It keeps
at most ``MAX_ENTRIES`` files, the least recently used removed first.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import secrets

from google.protobuf import message

from recaffe.proto import caffe_pb2

ENV = "RECAFFE_PROTOTXT_CACHE"
OFF = "off"
MAX_ENTRIES = 256
_SUFFIX = ".pb"
_DIGEST = 32  # an entry is the SHA-256 of the serialised message, then the message
_SCHEMA = hashlib.sha256(caffe_pb2.DESCRIPTOR.serialized_pb).digest()


def folder() -> pathlib.Path | None:
    """The cache folder, or None when the cache is off."""
    value = os.environ.get(ENV, "").strip()
    if value.lower() == OFF:
        return None
    if value:
        return pathlib.Path(value)
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "recaffe" / "prototxt"


def entry(text: str, msg: message.Message) -> pathlib.Path | None:
    """Where the parse of ``text`` as ``msg``'s type is kept (None when the cache is off)."""
    where = folder()
    if where is None:
        return None
    digest = hashlib.sha256(_SCHEMA + msg.DESCRIPTOR.full_name.encode() + b"\0" + text.encode("utf-8"))
    return where / (digest.hexdigest() + _SUFFIX)


def load(text: str, msg: message.Message) -> bool:
    """Parse the kept form of ``text`` into ``msg``; False (``msg`` left empty) when there is none."""
    path = entry(text, msg)
    if path is None:
        return False
    try:
        data = path.read_bytes()
        if hashlib.sha256(data[_DIGEST:]).digest() != data[:_DIGEST]:
            return False  # damaged (a disk error, a foreign file): parse the text
        msg.ParseFromString(data[_DIGEST:])
    except (OSError, message.DecodeError):
        msg.Clear()
        return False
    with contextlib.suppress(OSError):
        os.utime(path)  # recently used: removed last
    return True


def store(text: str, msg: message.Message) -> None:
    """Keep ``msg``, protobuf's clean parse of ``text``, for the next read of the same text."""
    path = entry(text, msg)
    if path is None:
        return
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = msg.SerializeToString()
        temp.write_bytes(hashlib.sha256(data).digest() + data)
        os.replace(temp, path)  # readers see the whole entry or none
        _trim(path.parent)
    except OSError:
        with contextlib.suppress(OSError):
            temp.unlink()


def _trim(where: pathlib.Path) -> None:
    """Remove the least recently used entries beyond ``MAX_ENTRIES``."""
    entries = list(where.glob("*" + _SUFFIX))
    if len(entries) <= MAX_ENTRIES:
        return
    used = {}
    for path in entries:
        with contextlib.suppress(OSError):
            used[path] = path.stat().st_mtime_ns
    for path in sorted(used, key=used.__getitem__)[: len(used) - MAX_ENTRIES]:
        with contextlib.suppress(OSError):
            path.unlink()
