"""``recaffe export -model M.prototxt -weights W.caffemodel -output OUT.onnx|OUT.py``: a net with
its weights as an ONNX model (opset 18, dynamic batch axis) or as PyTorch source plus weights
(OUT.py runs with torch alone; OUT.pt holds the state_dict). The numbers stay Caffe's: a layer
with no exact form stops the export with the reason."""

from __future__ import annotations

import argparse
import logging
import pathlib

from recaffe.cli import common
from recaffe.net import TEST, Net

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="export a net to ONNX or PyTorch",
                                   description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="", help="the model definition (deploy net prototxt)")
    parser.add_argument("--weights", default="", help="trained weights (.caffemodel or .h5), ',' separated")
    parser.add_argument("--output", default="", help="OUT.onnx (ONNX) or OUT.py (PyTorch source + OUT.pt)")
    common.add_state_flags(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.model:
        raise common.CliError("Need a model definition to export (-model).")
    output = pathlib.Path(args.output)
    if output.suffix not in (".onnx", ".py"):
        raise common.CliError(f"-output must end in .onnx (ONNX) or .py (PyTorch), got {args.output!r}")
    net = Net(args.model, TEST, args.level, common.split_list(args.stage))
    for weights in common.split_list(args.weights):
        net.copy_trained_layers_from(weights)
    if not args.weights:
        log.warning("No -weights given: exporting the fillers' initial values")
    if output.suffix == ".onnx":
        from recaffe.export.onnx import to_onnx

        to_onnx(net, output)
        log.info("Wrote %s", output)
    else:
        from recaffe.export.torch_module import write_torch

        py, pt = write_torch(net, output)
        log.info("Wrote %s and %s", py, pt)
    return 0
