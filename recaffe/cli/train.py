"""``caffe train -solver S [-weights W | -snapshot STATE]``: train or finetune a model.

As tools/caffe.cpp does: the solver file is read (and upgraded); ``-level``/``-stage`` go into
its ``train_state``; ``-weights`` replaces the solver's own ``weights`` (finetuning) and
``-snapshot`` clears them and resumes from a ``.solverstate`` or ``.solverstate.h5``; SIGINT and
SIGHUP become solver actions (``-sigint_effect``, default stop; ``-sighup_effect``, default
snapshot); then the solver runs to ``max_iter``.

Device: ``-gpu`` picks it (see ``recaffe.cli.common``). Without ``-gpu``, a solver that says
``solver_mode: GPU`` runs on its ``device_id`` when PyTorch sees CUDA, and on the CPU (with a log
line) when it does not. Training on several GPUs at once (Caffe's NCCL mode) is not available.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import weakref
from collections.abc import Iterator
from typing import Any

import torch

from recaffe import logs, solver
from recaffe.cli import common, signals
from recaffe.io import prototxt
from recaffe.proto import caffe_pb2

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train or finetune a model",
                                   description=__doc__.split("\n")[0])
    parser.add_argument("--solver", default="", help="the solver definition (solver prototxt)")
    parser.add_argument("--weights", default="",
                        help="pretrained weights to finetune from, ',' separated (not with -snapshot)")
    parser.add_argument("--snapshot", default="", help="a .solverstate[.h5] to resume training from")
    parser.add_argument("--sigint_effect", type=signals.signal_effect, default=signals.STOP,
                        help="on SIGINT: snapshot, stop or none (default: stop)")
    parser.add_argument("--sighup_effect", type=signals.signal_effect, default=signals.SNAPSHOT,
                        help="on SIGHUP: snapshot, stop or none (default: snapshot)")
    parser.add_argument("--tensorboard", default="", metavar="DIR",
                        help="also write TensorBoard scalars to DIR (pip install recaffe[tensorboard])")
    common.add_state_flags(parser)
    common.add_gpu_flag(parser)
    common.add_progress_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.solver:
        raise common.CliError("Need a solver definition to train.")
    if args.snapshot and args.weights:
        raise common.CliError("Give a snapshot to resume training or weights to finetune but not both.")
    param = prototxt.read_solver_param(args.solver)
    param.train_state.level = args.level
    param.train_state.stage.extend(common.split_list(args.stage))
    device = select_device(args.gpu, param)
    if args.snapshot:
        param.ClearField("weights")
    elif args.weights:
        param.ClearField("weights")
        param.weights.append(args.weights)
    with signals.SignalHandler(args.sigint_effect, args.sighup_effect) as handler, \
            _tensorboard(args.tensorboard):
        trainer = solver.load_solver(param, device=device)
        trainer.set_action_function(handler.check)
        if args.snapshot:
            log.info("Resuming from %s", args.snapshot)
            trainer.restore(args.snapshot)
        log.info("Starting Optimization")
        enabled = logs.wants_progress_bar(args.progress)
        with logs.progress_bar(param.max_iter, "train", initial=trainer.iter, enabled=enabled) as bar:
            if bar is not None:
                trainer.add_callback(_ignore, functools.partial(_advance, bar, weakref.ref(trainer)))
            trainer.solve()
    log.info("Optimization Done.")
    return 0


def select_device(gpu_flag: str | None, param: caffe_pb2.SolverParameter) -> torch.device:
    """``-gpu``, else the solver's ``solver_mode``/``device_id``; sets ``param.device_id``."""
    if not gpu_flag and param.HasField("solver_mode") and param.solver_mode == param.GPU:
        if torch.cuda.is_available():
            gpu_flag = str(param.device_id)
        else:
            log.info("The solver asks for solver_mode: GPU but PyTorch sees no CUDA device.")
    ids = common.gpu_ids(gpu_flag)
    if len(ids) > 1:
        raise common.CliError(
            f"-gpu {gpu_flag}: training on several GPUs at once (Caffe's NCCL mode) is not available "
            "in recaffe; give one device id")
    if ids:
        log.info("Using GPUs %d", ids[0])
        log.info("GPU %d: %s", ids[0], torch.cuda.get_device_name(ids[0]))
        param.device_id = ids[0]
    else:
        log.info("Use CPU.")
    return common.use_device(ids)


def _ignore() -> None:
    pass


def _advance(bar: Any, trainer: weakref.ref[solver.Solver]) -> None:
    # a weak reference: the solver must not keep itself (and its nets' data threads) alive
    live = trainer()
    if live is not None:
        bar.set_postfix(loss=f"{live.smoothed_loss:g}", refresh=False)  # as the log prints it (%g)
    bar.update(1)


@contextlib.contextmanager
def _tensorboard(log_dir: str) -> Iterator[None]:
    if not log_dir:
        yield
        return
    from recaffe.cli import tensorboard

    with tensorboard.scalars_from_log(log_dir):
        yield
