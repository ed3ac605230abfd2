"""``caffe test -model M -weights W``: score a trained model over ``-iterations`` TEST batches.

As tools/caffe.cpp does, every batch logs ``Batch i, <output> = v`` for each element of each
output blob, then the mean loss (``Loss: L``), then each element's mean over the batches with the
``(* w = w·v loss)`` suffix on loss outputs (as the solver logs its test outputs). The sums
are float32, as in Caffe. ``-weights`` may
name several files separated by commas; they are copied in order.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import torch

from recaffe import logs, solver, test_outputs
from recaffe.cli import common
from recaffe.net import TEST, Net

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("test", help="score a model", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="", help="the model definition (net prototxt)")
    parser.add_argument("--weights", default="", help="trained weights (.caffemodel or .h5), ',' separated")
    common.add_iterations_flag(parser)
    common.add_state_flags(parser)
    common.add_gpu_flag(parser)
    common.add_progress_flag(parser)
    parser.add_argument("--optimize", action="store_true",
                        help="score in deploy mode: fused layers, blob memory reused (same outputs)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.model:
        raise common.CliError("Need a model definition to score.")
    files = common.split_list(args.weights)
    if not files:
        raise common.CliError("Need model weights to score.")
    common.check_iterations(args.iterations)
    device = common.select_device(args.gpu)
    first, *more = files  # (the layers of the first skip their fillers)
    net = Net(args.model, TEST, args.level, common.split_list(args.stage), device=device,
              optimize=args.optimize, weights_file=first)
    for weights in more:
        net.copy_trained_layers_from(weights)
    log.info("Running for %d iterations.", args.iterations)
    means, loss = score(net, args.iterations, logs.wants_progress_bar(args.progress))
    log.info("Loss: %g", loss)
    for name, weight, mean in means:
        log.info("%s", solver.output_text(name, mean, weight))
    return 0


def score(net: Net, iterations: int, progress: bool = False) -> tuple[list[tuple[str, float, float]], float]:
    """Forward ``iterations`` batches; returns (name, loss weight, mean) per output element and
    the mean loss, all in float32 arithmetic."""
    names = net.output_elements()
    totals = torch.zeros(len(names), dtype=torch.float32)
    loss = np.float32(0.0)
    evaluator = test_outputs.evaluator_for(net)  # e.g. SSD's mean AP; None: the means of the outputs
    with logs.progress_bar(iterations, "test", enabled=progress) as bar:
        for i in range(iterations):
            loss += np.float32(net.forward())
            if evaluator is not None:
                evaluator.add(net)
            else:
                values = net.output_values().to("cpu", torch.float32)
                totals += values
                for (name, _), value in zip(names, values.tolist()):
                    log.info("Batch %d, %s = %g", i, name, value)
            if bar is not None:
                bar.update(1)
    if evaluator is not None:
        scores = [(name, 0.0, value) for name, value in evaluator.results()]
        return scores, float(loss / np.float32(iterations))
    means = (totals / iterations).tolist()
    outputs = [(name, weight, mean) for (name, weight), mean in zip(names, means)]
    return outputs, float(loss / np.float32(iterations))
