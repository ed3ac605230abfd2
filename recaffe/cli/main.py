"""Entry point of the ``recaffe`` and ``caffe`` commands.

Flags are accepted in every spelling Caffe's gflags took and argparse takes: ``-solver=x``,
``-solver x``, ``--solver=x`` and ``--solver x``. Each subcommand lives in its own module, which
exposes ``register(subparsers)``; ``COMMAND_MODULES`` below is the manifest.

Every command logs through glog's format to stderr (``recaffe.logs``). A command that cannot run
as asked (a missing file, a bad flag value, an invalid net) ends with a FATAL line naming the
problem and exit status 1; so does an internal error (a bug), without a Python traceback unless
``RECAFFE_TRACEBACK=1`` is set, which adds it to the line.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import os
import re
import sys
from collections.abc import Sequence

from recaffe import errors, forks, logs, registry, threads
from recaffe.cli.common import CliError

COMMAND_MODULES: list[str] = [
    "train",
    "score",
    "benchmark",
    "device_query",
    "upgrade",
    "parse_log",
    "plot_log",
    "data_tools",
    "export",
    "explain",
    "compare",
    "repro",
]
# more commands from installed packages: ``register(subparsers)`` functions in this entry-point
# group (the pycaffe scripts classify and draw_net, from ``caffe.tools``)
COMMAND_ENTRY_POINTS = "recaffe.cli"

log = logging.getLogger("recaffe.cli")

# what a user's input can cause; anything else is a bug (an "internal error" FATAL line)
USER_ERRORS = (errors.RecaffeError, CliError, ValueError, KeyError, OSError)

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
    for entry in importlib.metadata.entry_points(group=COMMAND_ENTRY_POINTS):
        entry.load()(subparsers)
    for command in subparsers.choices.values():
        threads.add_threads_flag(command)
        command.add_argument("--dialect", default=None, metavar="NAME",
                             help="read prototxts/caffemodels as this Caffe fork's (ssd, densenet, "
                                  "pspnet, faster_rcnn; bvlc); default: detected from the fields and "
                                  "layer types used")
    return parser


def unknown_flags_message(unknown: Sequence[str], parser: argparse.ArgumentParser) -> str:
    """argparse's "unrecognized arguments" line, with the closest flag of ``parser`` suggested for
    each misspelt one, in the spelling the user typed (``-solvr``: did you mean -solver?)."""
    flags = [s for action in parser._actions for s in action.option_strings if s.startswith("--")]
    hints = []
    for arg in unknown:
        name = arg.split("=", 1)[0]
        guess = registry.closest(name.lstrip("-"), [f[2:] for f in flags]) if name.startswith("-") else None
        if guess is not None:
            dashes = "-" if name.startswith("-") and not name.startswith("--") else "--"
            hints.append(f"{name}: did you mean {dashes}{guess}?")
    return f"unrecognized arguments: {' '.join(unknown)}" + "".join(f"\n  {h}" for h in hints)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    given = list(sys.argv[1:] if argv is None else argv)
    args, unknown = parser.parse_known_args(normalise_flags(given))
    if unknown:
        command = parser if args.command is None else _subparsers(parser).choices[args.command]
        command.error(unknown_flags_message([_as_typed(flag, given) for flag in unknown], command))
    if not getattr(args, "run", None):
        parser.print_help()
        return 1
    logs.setup_logging(logger="")
    return run_command(args)


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command: a user error becomes a FATAL line and status 1."""
    logging.captureWarnings(True)  # Python warnings become W lines of the log
    traceback = os.environ.get("RECAFFE_TRACEBACK", "") not in ("", "0")
    try:
        threads.apply_threads_flag(args)
        forks.set_default_dialect(args.dialect)
        return int(args.run(args) or 0)
    except USER_ERRORS as e:
        log.critical("%s", errors.describe(e) if not isinstance(e, OSError) else str(e), exc_info=traceback)
        return 1
    except MemoryError as e:
        log.critical("out of memory%s: the net, batch or file needs more memory than is available",
                     f" ({e})" if str(e) else "", exc_info=traceback)
        return 1
    except KeyboardInterrupt:
        log.critical("Interrupted.")
        return 130
    except Exception as e:  # a bug in recaffe: one FATAL line, the traceback on request
        log.critical("internal error: %s: %s (run with RECAFFE_TRACEBACK=1 for the traceback, and "
                     "please report it)", type(e).__name__, e, exc_info=traceback)
        return 1


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _as_typed(flag: str, given: Sequence[str]) -> str:
    """``flag`` as the user wrote it (``normalise_flags`` turned ``-solvr`` into ``--solvr``)."""
    return flag[1:] if flag.startswith("--") and flag[1:] in given else flag


if __name__ == "__main__":
    sys.exit(main())
