"""Reading a prototxt or caffemodel in the right dialect, and naming every unknown field at once.

A text prototxt is parsed by protobuf's own text parser with unknown fields allowed, recording
each one it skips (line, column, message, name), first against BVLC's schema. A clean BVLC parse
whose layer types BVLC has is returned as is. Otherwise each dialect is tried; the one that reads
every field and knows every layer type is used, and the net is lowered (see ``dialect.py``).
When none fits, one error lists every unknown field and layer type, with the fork each comes
from when recaffe knows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf import message, text_format

from recaffe.forks import catalog
from recaffe.forks.dialect import Dialect
from recaffe.io import parse_cache, prototxt
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS


class UnknownFieldsError(prototxt.ProtoFileError):
    """A prototxt uses fields or layer types that neither BVLC's schema nor the chosen dialect has."""


@dataclass(frozen=True)
class Unknown:
    """One unknown field (``line``:``column``, in message ``message``) or layer type (line 0)."""

    line: int
    column: int
    message: str
    name: str


class _RecordingParser(text_format._Parser):  # protobuf's parser, told to skip and report unknowns
    def __init__(self) -> None:
        super().__init__(allow_unknown_field=True)
        self.unknown: list[Unknown] = []
        self._skipping = 0  # the fields inside a skipped one are not reported again

    def _SkipFieldContents(self, tokenizer: Any, field_name: str, immediate_message_type: str) -> None:
        if not self._skipping:
            self.unknown.append(Unknown(tokenizer._previous_line + 1, tokenizer._previous_column + 1,
                                        immediate_message_type.rsplit(".", 1)[-1], field_name))
        self._skipping += 1
        try:
            super()._SkipFieldContents(tokenizer, field_name, immediate_message_type)  # type: ignore[misc]
        finally:
            self._skipping -= 1


def parse_recording(text: str, msg: message.Message, source: str) -> list[Unknown]:
    """Parse ``text`` into ``msg``, skipping unknown fields; return them. Other errors raise."""
    parser = _RecordingParser()
    try:
        parser.ParseLines(text.split("\n"), msg)
    except text_format.ParseError as e:
        raise prototxt.parse_error(e, msg, source) from e
    return parser.unknown


def _unknown_types(net: Any, dialect: Dialect | None) -> list[Unknown]:
    names = set(LAYERS.names()) | set(dialect.layer_types if dialect else ())
    layers = list(net.layer)
    return [Unknown(0, 0, f"layer {layer.name!r}", layer.type) for layer in layers
            if layer.type and layer.type not in names]


def parse_net_text(text: str, source: str, dialect: str | None = None) -> caffe_pb2.NetParameter:
    """A text NetParameter in BVLC's messages (lowered from the fork's when a dialect applies).

    ``dialect``: a dialect's name, ``"bvlc"``, or None to use the default
    (:func:`recaffe.forks.set_default_dialect`) or else detect it.
    """
    name = dialect if dialect is not None else catalog.default_dialect()
    if name is not None:
        chosen = None if name == catalog.BVLC else catalog.get_dialect(name)
        net = caffe_pb2.NetParameter() if chosen is None else chosen.net_parameter()
        problems = parse_recording(text, net, source)
        if problems:
            raise _error(source, problems, chosen)
        return net if chosen is None else chosen.lower_net(net)
    bvlc = caffe_pb2.NetParameter()
    if parse_cache.load(text, bvlc) and not _unknown_types(bvlc, None):
        return bvlc  # protobuf's clean parse of this text, kept from an earlier read
    bvlc.Clear()
    problems = parse_recording(text, bvlc, source)
    types = _unknown_types(bvlc, None)
    if not problems and not types:
        parse_cache.store(text, bvlc)
        return bvlc
    fits = []
    for candidate in catalog.dialects():
        net = candidate.net_parameter()
        if not parse_recording(text, net, source) and not _unknown_types(net, candidate):
            fits.append((candidate, net))
    if len(fits) == 1:
        return fits[0][0].lower_net(fits[0][1])
    if len(fits) > 1:
        raise UnknownFieldsError(
            f"{source}: reads in more than one fork dialect ({', '.join(d.name for d, _ in fits)}); "
            f"name one with --dialect NAME (Python: dialect=NAME)")
    raise _error(source, problems + types, None)


def parse_solver_text(text: str, source: str) -> caffe_pb2.SolverParameter:
    """A text SolverParameter in BVLC's message; fields only a fork's solver has (SSD's
    ``eval_type``, ``ap_version``, ``show_per_class_result``) are read in the first dialect that
    reads the whole file and carried (``Dialect.fork_solver_param`` reads them back)."""
    bvlc = caffe_pb2.SolverParameter()
    problems = parse_recording(text, bvlc, source)
    if not problems:
        return bvlc
    for candidate in catalog.dialects():
        solver = candidate.pb2.SolverParameter()
        if not parse_recording(text, solver, source):
            return candidate.lower_solver(solver)
    raise _error(source, problems, None, "SolverParameter")


def read_net_binary(path: prototxt.PathLike, dialect: str) -> caffe_pb2.NetParameter:
    """A binary NetParameter (caffemodel) read with ``dialect``'s field numbers, then lowered."""
    if dialect == catalog.BVLC:
        return prototxt.read_binary(path, caffe_pb2.NetParameter())
    chosen = catalog.get_dialect(dialect)
    return chosen.lower_net(prototxt.read_binary(path, chosen.net_parameter()))


def fork_hint(name: str) -> str | None:
    """Which fork a field or layer type comes from, and how to read it, if recaffe knows."""
    homes = [d for d in catalog.dialects() if name in d.layer_types or name in d.all_fork_fields()]
    if homes:
        return "; ".join(f"from {d.fork}; use --dialect {d.name}" for d in homes)
    if name in catalog.NOT_YET:
        return f"from {catalog.NOT_YET[name]}, which recaffe does not read yet"
    return None


UNHEARD_OF = "not in BVLC Caffe or any fork recaffe knows"


def _error(source: str, problems: list[Unknown], dialect: Dialect | None,
           kind: str = "NetParameter") -> UnknownFieldsError:
    """One line per problem (``file:line:column: ...`` for a field); a header when there are several."""
    schema = f"the {dialect.name} dialect" if dialect else "BVLC Caffe"
    lines = []
    for p in problems:
        hint = fork_hint(p.name)
        what = f"{p.name} is {hint}" if hint else UNHEARD_OF
        if p.line:
            lines.append(f"{source}:{p.line}:{p.column}: cannot parse as {kind}: "
                         f'unknown field "{p.name}" of {p.message}: {what}')
        else:
            lines.append(f'{source}: unknown layer type "{p.name}" ({p.message}): {what}')
    if len(lines) > 1:
        lines.insert(0, f"{source}: {len(problems)} unknown fields/layer types for {schema}:")
    return UnknownFieldsError("\n".join(lines))
