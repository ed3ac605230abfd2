"""``caffe time -model M``: time a net's forward and backward passes, layer by layer.

As tools/caffe.cpp does: one untimed Forward and Backward first (so memory is allocated), then
``-iterations`` passes that run every layer's forward in order and every layer's backward in
reverse order, timing each call. The net's inputs are used as they are (the benchmark assumes a
net that makes its own data, or whose inputs may stay zero). On CUDA the device is synchronised
around each timed call, as Caffe's CUDA-event timers do.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable

import torch

from recaffe import threads
from recaffe.cli import common
from recaffe.net import TEST, TRAIN, Net

log = logging.getLogger(__name__)

PHASES = {"TRAIN": TRAIN, "TEST": TEST}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("time", help="benchmark model execution time",
                                   description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="", help="the model definition (net prototxt)")
    parser.add_argument("--phase", default="", help="network phase, TRAIN (default) or TEST")
    common.add_iterations_flag(parser)
    common.add_state_flags(parser)
    common.add_gpu_flag(parser)
    parser.add_argument("--optimize", action="store_true",
                        help="time deploy mode (-phase TEST): fused layers, blob memory reused; "
                             "whole forward passes only")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.model:
        raise common.CliError("Need a model definition to time.")
    if args.phase not in ("", *PHASES):
        raise common.CliError(f'phase must be "TRAIN" or "TEST", got {args.phase!r}')
    common.check_iterations(args.iterations)
    device = common.select_device(args.gpu)
    if args.optimize and args.phase != "TEST":
        raise common.CliError("-optimize times deploy mode, which runs TEST-phase nets: add -phase TEST")
    net = Net(args.model, PHASES[args.phase or "TRAIN"], args.level, common.split_list(args.stage),
              device=device, optimize=args.optimize)
    if args.optimize:
        return time_deploy(net, args.iterations)
    log.info("Performing Forward")
    log.info("Initial loss: %g", net.forward())
    log.info("Performing Backward")
    net.backward()
    log.info("*** Benchmark begins ***")
    log.info("Testing for %d iterations.", args.iterations)
    forward_ms, backward_ms, total_ms, pass_ms = benchmark(net, args.iterations)
    log.info("Average time per layer: ")
    for name, fwd, bwd in zip(net.layer_names, forward_ms, backward_ms):
        log.info("%10s\tforward: %g ms.", name, fwd / args.iterations)
        log.info("%10s\tbackward: %g ms.", name, bwd / args.iterations)
    log.info("Average Forward pass: %g ms.", pass_ms[0] / args.iterations)
    log.info("Average Backward pass: %g ms.", pass_ms[1] / args.iterations)
    log.info("Average Forward-Backward: %g ms.", total_ms / args.iterations)
    log.info("Total Time: %g ms.", total_ms)
    log.info("*** Benchmark ends ***")
    return 0


def time_deploy(net: Net, iterations: int) -> int:
    """Deploy mode has no per-layer steps to time (fused layers run as one): whole forward passes."""
    clock = _clock(net.device)
    log.info("Performing Forward")
    net.forward()
    log.info("*** Benchmark begins ***")
    log.info("Testing for %d iterations.", iterations)
    start = clock()
    for j in range(iterations):
        iteration_start = clock()
        net.forward()
        log.info("Iteration: %d forward time: %g ms.", j + 1, clock() - iteration_start)
    total = clock() - start
    log.info("Average Forward pass: %g ms.", total / iterations)
    log.info("Total Time: %g ms.", total)
    log.info("*** Benchmark ends ***")
    return 0


def benchmark(
    net: Net, iterations: int, backward: bool = True
) -> tuple[list[float], list[float], float, tuple[float, float]]:
    """Per-layer forward and backward totals, the total, and the (forward, backward) pass
    totals over ``iterations`` passes, in milliseconds (``backward=False``: forward passes only)."""
    clock = _clock(net.device)
    forward = [0.0] * len(net.layers)
    backward_ms = [0.0] * len(net.layers)
    forward_total = backward_total = 0.0
    start = clock()
    for j in range(iterations):
        threads.before_forward()
        iteration_start = clock()
        for i, layer in enumerate(net.layers):
            t = clock()
            layer.run_forward(net.bottom_vecs[i], net.top_vecs[i])
            forward[i] += clock() - t
        forward_total += clock() - iteration_start
        backward_start = clock()
        for i in reversed(range(len(net.layers)) if backward else ()):
            t = clock()
            net.layers[i].run_backward(net.top_vecs[i], net.bottom_need_backward[i], net.bottom_vecs[i])
            backward_ms[i] += clock() - t
        backward_total += clock() - backward_start
        log.info("Iteration: %d forward-backward time: %g ms.", j + 1, clock() - iteration_start)
    return forward, backward_ms, clock() - start, (forward_total, backward_total)


def _clock(device: torch.device) -> Callable[[], float]:
    """Milliseconds on a monotonic clock, after the device has finished its queued work."""
    if device.type == "cuda":
        def clock() -> float:
            torch.cuda.synchronize(device)
            return time.perf_counter() * 1000.0
        return clock
    return lambda: time.perf_counter() * 1000.0
