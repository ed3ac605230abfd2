"""``caffe compare A B``: how two runs' weights and solver states differ, blob by blob.

A and B are caffemodels, solver states (binary or HDF5), or the snapshot prefixes or folders of two
runs (see ``recaffe.debug.compare``). Prints per blob the largest absolute and relative difference
and the count of differing elements, the first diverging blob first; exit status 0 when the two
are identical (or equal within ``-rtol``/``-atol``), 1 when they differ.
"""

from __future__ import annotations

import argparse
import logging

from recaffe.cli.common import CliError
from recaffe.debug import compare

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("compare", help="compare the weights/solver states of two runs",
                                   description=__doc__.split("\n")[0])
    parser.add_argument("a", help="caffemodel, solverstate, snapshot prefix or folder")
    parser.add_argument("b", help="the same for the other run")
    parser.add_argument("--rtol", type=float, default=0.0,
                        help="relative tolerance (default 0: bit-identical)")
    parser.add_argument("--atol", type=float, default=0.0, help="absolute tolerance (default 0)")
    parser.add_argument("--model", default="", help="net prototxt whose layer order sorts the blobs")
    parser.add_argument("--rows", type=int, default=40, help="print at most this many blobs (default 40)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.rtol < 0 or args.atol < 0:
        raise CliError(f"-rtol and -atol must be >= 0, got {args.rtol} and {args.atol}")
    try:
        result = compare.compare(args.a, args.b, args.rtol, args.atol, args.model or None)
    except compare.CompareError as e:
        raise CliError(str(e)) from None
    if len(result.iterations) > 1 or result.iterations != [None]:
        log.info("Snapshot iterations compared: %s", compare.describe_iterations(result.iterations))
    for note in result.notes:
        log.info("%s", note)
    for side, keys in (("A", result.only_a), ("B", result.only_b)):
        if keys:
            log.info("Only in %s: iterations %s", side, compare.describe_iterations(keys))
    for line in compare.format_table(result.rows, args.rows):
        print(line)
    verdict = compare.summary(result, bool(args.rtol or args.atol))
    print(verdict)
    return 0 if result.identical else 1
