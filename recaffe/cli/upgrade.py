"""``upgrade_net_proto_text``, ``upgrade_net_proto_binary``, ``upgrade_solver_proto_text IN OUT``:
rewrite legacy Caffe files in the current format (Caffe's tools of the same names).

Nets get every upgrade Caffe applies on reading (V0 and V1 layers, data-transform fields,
net-level inputs, BatchNorm params); solvers get ``solver_type`` → ``type``. A file that needs
nothing is written unchanged, with an error line saying so, and the exit status is still 0. An
unreadable input exits with status 2, a failed upgrade with 1.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import message

from recaffe.io import prototxt, upgrade
from recaffe.proto import caffe_pb2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Tool:
    help: str
    kind: str  # "text" or "binary"
    new_message: Callable[[], message.Message]
    needs_upgrade: Callable[[Any], bool]  # Any: each tool's own message type
    upgrade: Callable[[Any, str], object]


def _solver_needs_upgrade(param: caffe_pb2.SolverParameter) -> bool:
    return param.HasField("solver_type")


TOOLS = {
    "upgrade_net_proto_text": _Tool(
        "upgrade a net prototxt to the current format", "text", caffe_pb2.NetParameter,
        upgrade.net_needs_upgrade, upgrade.upgrade_net),
    "upgrade_net_proto_binary": _Tool(
        "upgrade a binary net (.caffemodel) to the current format", "binary", caffe_pb2.NetParameter,
        upgrade.net_needs_upgrade, upgrade.upgrade_net),
    # no source name: the snapshot_prefix default must not be written into the file
    "upgrade_solver_proto_text": _Tool(
        "upgrade a solver prototxt (solver_type -> type)", "text", caffe_pb2.SolverParameter,
        _solver_needs_upgrade, lambda param, source: upgrade.upgrade_solver(param)),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    for name, tool in TOOLS.items():
        parser = subparsers.add_parser(name, help=tool.help, description=tool.help)
        parser.add_argument("input", help=f"the {tool.kind} file to upgrade")
        parser.add_argument("output", help=f"where to write the upgraded {tool.kind} file")
        parser.set_defaults(run=lambda args, tool=tool: run(tool, args.input, args.output))


def run(tool: _Tool, source: str, destination: str) -> int:
    param = tool.new_message()
    kind = param.DESCRIPTOR.name
    try:
        read = prototxt.read_text if tool.kind == "text" else prototxt.read_binary
        read(source, param)
    except prototxt.ProtoFileError as e:
        log.error("Failed to parse input %s file as %s: %s", tool.kind, kind, e)
        return 2
    if tool.needs_upgrade(param):
        tool.upgrade(param, source)
    else:
        log.error("File already in latest proto format: %s", source)
    write = prototxt.write_text if tool.kind == "text" else prototxt.write_binary
    write(destination, param)
    log.info("Wrote upgraded %s %s proto to %s", kind, tool.kind, destination)
    return 0
