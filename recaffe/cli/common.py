"""Flags and device selection shared by the ``caffe`` subcommands (tools/caffe.cpp's helpers).

``-gpu`` takes device ids (``0,1``) or ``all`` as in Caffe, and also ``cpu``, which picks the CPU
even when the solver asks for ``solver_mode: GPU``. Asking for a GPU that PyTorch cannot see is an
error, unless ``RECAFFE_CPU_FALLBACK=1`` is set: then the command warns and runs on the CPU.
"""

from __future__ import annotations

import argparse
import logging

import torch

from recaffe.device import CPU_FALLBACK_ENV, cpu_fallback, use_device

log = logging.getLogger(__name__)

class CliError(Exception):
    """A command cannot run as asked; ``main`` logs the message as a FATAL line and exits 1."""


def split_list(value: str | None) -> list[str]:
    """A comma-separated flag value as a list, without empty items."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def add_state_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--level", type=int, default=0, help="network level (NetState.level)")
    parser.add_argument("--stage", default="", help="network stages, separated by ','")


def add_gpu_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gpu", default=None, metavar="IDS",
        help="GPU device ids separated by ',', 'all' for every device, or 'cpu'. "
             f"Set {CPU_FALLBACK_ENV}=1 to run on the CPU when no CUDA device is available.",
    )


def add_iterations_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--iterations", type=int, default=50, help="number of iterations to run")


def check_iterations(iterations: int) -> None:
    if iterations < 1:
        raise CliError(f"-iterations must be at least 1, got {iterations}")


def add_progress_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress", choices=("auto", "on", "off"), default="auto",
        help="progress bar with ETA on stderr; 'auto' shows it only when stderr is a terminal",
    )


def gpu_ids(flag: str | None) -> list[int]:
    """The CUDA device ids ``-gpu`` names ([] for the CPU); checks PyTorch can see them."""
    if flag is None or flag.strip() in ("", "cpu"):
        return []
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        if cpu_fallback():
            log.warning("-gpu %s: no CUDA device is available to PyTorch; %s is set, using the CPU",
                        flag, CPU_FALLBACK_ENV)
            return []
        raise CliError(
            f"-gpu {flag}: no CUDA device is available to PyTorch (torch {torch.__version__}, "
            f"CUDA build {torch.version.cuda or 'none'}). Use -gpu cpu, leave -gpu out, or set "
            f"{CPU_FALLBACK_ENV}=1 to fall back to the CPU."
        )
    if flag.strip() == "all":
        return list(range(count))
    try:
        ids = [int(item) for item in split_list(flag)]
    except ValueError:
        raise CliError(f"-gpu must be device ids separated by ',', 'all' or 'cpu', got {flag!r}") from None
    for i in ids:
        if not 0 <= i < count:
            raise CliError(f"-gpu {flag}: there is no CUDA device {i} (PyTorch sees {count})")
    return ids


def select_device(gpu_flag: str | None) -> torch.device:
    """``-gpu`` for test and time: the first id given, or the CPU (with Caffe's log lines)."""
    ids = gpu_ids(gpu_flag)
    if ids:
        log.info("Use GPU with device ID %d", ids[0])
        log.info("GPU device name: %s", torch.cuda.get_device_name(ids[0]))
    else:
        log.info("Use CPU.")
    return use_device(ids[:1])
