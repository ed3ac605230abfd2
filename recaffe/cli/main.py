"""Entry point of the ``recaffe`` and ``caffe`` commands.

Flags are accepted in every spelling Caffe's gflags took and argparse takes: ``-solver=x``,
``-solver x``, ``--solver=x`` and ``--solver x``. Each subcommand lives in its own module, which
exposes ``register(subparsers)``; ``COMMAND_MODULES`` below is the manifest.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence

COMMAND_MODULES: list[str] = ["data_tools", "pycaffe_tools"]

_GFLAG = re.compile(r"^-([A-Za-z][A-Za-z0-9_]+)(=.*)?$")


def normalise_flags(argv: Sequence[str]) -> list[str]:
    """Rewrite gflags-style ``-name[=value]`` (one dash, a word) as ``--name[=value]``."""
    return [f"-{arg}" if _GFLAG.match(arg) else arg for arg in argv]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recaffe", description="Caffe, rebuilt in Python: train, test and convert Caffe models."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMAND_MODULES:
        importlib.import_module(f"recaffe.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(normalise_flags(sys.argv[1:] if argv is None else argv))
    if not getattr(args, "run", None):
        parser.print_help()
        return 1
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
