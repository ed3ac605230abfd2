"""``caffe repro -solver S -iterations N``: is training reproducible, and where does it diverge?

Runs the solver under each pair of ``-settings`` (default ``run-twice``; ``all`` for every one
available here: see ``recaffe.debug.repro.SETTINGS``) and prints "bit-identical" or the first
iteration, phase, layer and blob that differ, with the largest difference. ``-against DIR`` compares
one run with a run's snapshots (a folder or prefix), ``-against LOG`` with a glog log of BVLC Caffe
(the display and test outputs per iteration; default ``-rtol 1e-4``, as the log prints 6 digits).
Exit status 0 when everything matched, 1 otherwise.
"""

from __future__ import annotations

import argparse
import logging
import os

from recaffe.cli import common
from recaffe.debug import compare, repro
from recaffe.io import prototxt

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("repro", help="check that training is reproducible; find where it is not",
                                   description=__doc__.split("\n")[0])
    parser.add_argument("--solver", default="", help="the solver definition (solver prototxt)")
    common.add_iterations_flag(parser)
    parser.add_argument("--settings", default="",
                        help=f"pairs to run, ',' separated, or 'all': {', '.join(repro.SETTINGS.names())} "
                             "(default run-twice, or none with -against)")
    parser.add_argument("--against", default="", metavar="DIR|LOG",
                        help="a run's snapshots (folder or prefix) or a BVLC Caffe glog log to compare with")
    parser.add_argument("--rtol", type=float, default=None,
                        help="relative tolerance (default 0; 1e-4 for a log)")
    parser.add_argument("--atol", type=float, default=0.0, help="absolute tolerance (default 0)")
    common.add_state_flags(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.solver:
        raise common.CliError("Need a solver definition to check (-solver).")
    common.check_iterations(args.iterations)
    param = prototxt.read_solver_param(args.solver)
    param.train_state.level = args.level
    param.train_state.stage.extend(common.split_list(args.stage))
    _check_paths(param, args.solver)
    names = _settings(args.settings, default=[] if args.against else ["run-twice"])
    same = True
    for name in names:
        setting = repro.SETTINGS.get(name)
        outcome = repro.run_setting(param, setting, args.iterations, args.rtol or 0.0, args.atol)
        for note in outcome.notes:
            log.warning("%s: %s", name, note)
        print(outcome.message())
        same &= outcome.difference is None
    if args.against:
        is_log = os.path.isfile(args.against) and not _is_snapshot_file(args.against)
        try:
            if is_log:
                rtol = 1e-4 if args.rtol is None else args.rtol
                matched, report = repro.against_log(param, args.against, args.iterations, rtol, args.atol)
            else:
                matched, report = repro.against_snapshots(param, args.against, args.iterations,
                                                          args.rtol or 0.0, args.atol)
        except compare.CompareError as e:
            raise common.CliError(str(e)) from None
        print(f"against: {report}")
        same &= matched
    return 0 if same else 1


def _settings(value: str, default: list[str]) -> list[str]:
    names = common.split_list(value)
    if names == ["all"]:
        return repro.SETTINGS.names()
    for name in names:
        if name not in repro.SETTINGS:
            known = ", ".join(repro.SETTINGS.names())
            raise common.CliError(f"-settings: unknown setting {name!r} (known: {known})")
    return names or default


def _is_snapshot_file(path: str) -> bool:
    return any(ext in os.path.basename(path) for ext in (".caffemodel", ".solverstate"))


def _check_paths(param: object, solver_file: str) -> None:
    """The solver's net must be readable where the command runs (paths are relative to the cwd)."""
    net = getattr(param, "net", "")
    if net and not os.path.exists(net):
        raise common.CliError(f"{solver_file}: net {net!r} not found (paths are relative to the working "
                              f"directory, as in caffe train)")
