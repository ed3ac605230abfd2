"""``caffe train -solver S [-weights W | -snapshot STATE]``: train or finetune a model.

As tools/caffe.cpp does: the solver file is read (and upgraded); ``-level``/``-stage`` go into
its ``train_state``; ``-weights`` replaces the solver's own ``weights`` (finetuning) and
``-snapshot`` clears them and resumes from a ``.solverstate`` or ``.solverstate.h5``; SIGINT and
SIGHUP become solver actions (``-sigint_effect``, default stop; ``-sighup_effect``, default
snapshot); then the solver runs to ``max_iter``.

Device: ``-gpu`` picks it (see ``recaffe.cli.common``). Without ``-gpu``, a solver that says
``solver_mode: GPU`` runs on its ``device_id`` when PyTorch sees CUDA, and on the CPU (with a log
line) when it does not.

Several devices (``-gpu 0,1``, ``-gpu all``): one process per device is spawned, each a rank of
one data-parallel run (``recaffe.distributed``; with ``RECAFFE_CPU_FALLBACK=1`` and no CUDA, one
CPU rank per listed id). Under torchrun (``RANK``/``WORLD_SIZE`` set) this process is one rank of
that run and trains on ``cuda:LOCAL_RANK`` (or the ``LOCAL_RANK``-th ``-gpu`` id), or on the CPU.
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

from recaffe import distributed, logs, solver
from recaffe.cli import common, signals
from recaffe.debug import nan_guard
from recaffe.distributed import launch
from recaffe.distributed.sync import GradientSync
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
    parser.add_argument("--nan_check", choices=("on", "off"), default="on",
                        help="stop at the first non-finite loss or update and name the layer (default: on; "
                             "off: run on as Caffe does)")
    common.add_state_flags(parser)
    common.add_gpu_flag(parser)
    common.add_progress_flag(parser)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="in a distributed run, every rank logs (by default only rank 0 does)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.solver:
        raise common.CliError("Need a solver definition to train.")
    if args.snapshot and args.weights:
        raise common.CliError("Give a snapshot to resume training or weights to finetune but not both.")
    param = prototxt.read_solver_param(args.solver)
    param.train_state.level = args.level
    param.train_state.stage.extend(common.split_list(args.stage))
    try:
        world = distributed.env_world()
    except distributed.DistributedError as e:
        raise common.CliError(str(e)) from e
    ranks = rank_count(args.gpu) if world is None else 1
    if ranks > 1:
        return launch.spawn(functools.partial(_spawned_rank, args), ranks)
    device = select_device(args.gpu, param, world.local_rank if world else None)
    if args.snapshot:
        param.ClearField("weights")
    elif args.weights:
        param.ClearField("weights")
        param.weights.append(args.weights)
    member = _join(world, device, args.verbose) if world else None
    root = member is None or member.rank == 0
    effects = (args.sigint_effect, args.sighup_effect) if root else (signals.NONE, signals.NONE)
    with signals.SignalHandler(*effects) as handler, _tensorboard(args.tensorboard if root else ""), \
            distributed.membership(member), nan_guard.enabled_as(args.nan_check == "on"):
        trainer = solver.load_solver(param, device=device)
        trainer.set_action_function(handler.check)
        if member is not None:  # Caffe's NCCL: all-reduced gradients, rank 0's actions for all
            sync = GradientSync(trainer, member)
            trainer.add_callback(sync.on_start, sync.on_gradients_ready)
            trainer.set_action_function(sync.agree_on_actions(handler.check))
        if args.snapshot:
            log.info("Resuming from %s", args.snapshot)
            trainer.restore(args.snapshot)
        if member is not None:
            sync.broadcast()
        log.info("Starting Optimization")
        enabled = root and logs.wants_progress_bar(args.progress)
        with logs.progress_bar(param.max_iter, "train", initial=trainer.iter, enabled=enabled) as bar:
            if bar is not None:
                trainer.add_callback(_ignore, functools.partial(_advance, bar, weakref.ref(trainer)))
            try:
                trainer.solve()
            except nan_guard.NonFiniteError as e:
                log.critical("%s", e)
                return 1
    log.info("Optimization Done.")
    return 0


def rank_count(gpu_flag: str | None) -> int:
    """How many ranks ``-gpu`` asks for: one per id (per CUDA device for ``all``), also when
    ``RECAFFE_CPU_FALLBACK`` runs them on the CPU."""
    ids = common.gpu_ids(gpu_flag)
    if ids or gpu_flag is None or gpu_flag.strip() in ("all", "cpu"):
        return max(len(ids), 1)
    return len(common.split_list(gpu_flag))


def select_device(gpu_flag: str | None, param: caffe_pb2.SolverParameter,
                  local_rank: int | None = None) -> torch.device:
    """``-gpu``, else the solver's ``solver_mode``/``device_id``; sets ``param.device_id``. A rank
    of a distributed run (``local_rank`` given) takes the ``local_rank``-th id, or
    ``cuda:local_rank`` when the solver asks for the GPU without ``-gpu``."""
    if not gpu_flag and param.HasField("solver_mode") and param.solver_mode == param.GPU:
        if torch.cuda.is_available():
            gpu_flag = str(param.device_id if local_rank is None else local_rank)
            local_rank = None  # the flag names this rank's device already
        else:
            log.info("The solver asks for solver_mode: GPU but PyTorch sees no CUDA device.")
    ids = common.gpu_ids(gpu_flag)
    if local_rank is not None and ids:
        if local_rank >= len(ids):
            raise common.CliError(f"-gpu {gpu_flag}: rank {local_rank} of this machine has no device "
                                  f"(the flag names {len(ids)})")
        ids = ids[local_rank:local_rank + 1]
    if ids:
        log.info("Using GPUs %d", ids[0])
        log.info("GPU %d: %s", ids[0], torch.cuda.get_device_name(ids[0]))
        param.device_id = ids[0]
    else:
        log.info("Use CPU.")
    return common.use_device(ids)


def _join(world: distributed.EnvWorld, device: torch.device, verbose: bool) -> distributed.World:
    try:
        return distributed.World(world.rank, world.size, world.rendezvous, device, verbose=verbose)
    except distributed.DistributedError as e:
        raise common.CliError(str(e)) from e


def _spawned_rank(args: argparse.Namespace) -> int:
    """One rank spawned by ``-gpu 0,1``: the ``recaffe train`` command again, in its own process."""
    from recaffe.cli import main

    logs.setup_logging(logger="")
    return main.run_command(args)


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
