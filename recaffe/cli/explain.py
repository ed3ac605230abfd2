"""``recaffe explain SOLVER_OR_NET``: every place where a PyTorch/TensorFlow port of this net and
solver would silently differ from Caffe (fillers, bias init, LRN alpha, pooling rounding,
BatchNorm statistics, weight decay, momentum vs rate changes, loss normalisation, input
preprocessing), each with the PyTorch code that reproduces Caffe."""

from __future__ import annotations

import argparse

from recaffe.export import explain


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("explain", help="where a PyTorch/TF port would differ from Caffe",
                                   description=__doc__.split("\n")[0])
    parser.add_argument("path", help="a solver.prototxt (with its net) or a net prototxt")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    header, findings = explain.explain(args.path)
    print(explain.render(header, findings))
    return 0
