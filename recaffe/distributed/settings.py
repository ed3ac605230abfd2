"""The multi-process settings of one process: how many solvers train together and which one this is.

Caffe keeps them in its ``Caffe`` singleton (``solver_count``, ``solver_rank``, ``multiprocess``);
here they live in one module, read by the solver (root-only testing and snapshots, the random seed
of each rank), the Data/HDF5Data layers (which items a rank keeps) and the log (only the root
solver logs INFO). pycaffe's ``caffe.set_solver_count`` and friends write them; ``recaffe train``
sets them when it joins a distributed run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from recaffe.proto import caffe_pb2


@dataclass
class _Settings:
    solver_count: int = 1
    solver_rank: int = 0
    multiprocess: bool = False


_settings = _Settings()


def solver_count() -> int:
    return _settings.solver_count


def set_solver_count(count: int) -> None:
    count = int(count)
    if count < 1:
        raise ValueError(f"solver_count must be at least 1, got {count}")
    _settings.solver_count = count


def solver_rank() -> int:
    return _settings.solver_rank


def set_solver_rank(rank: int) -> None:
    rank = int(rank)
    if rank < 0:
        raise ValueError(f"solver_rank must be non-negative, got {rank}")
    _settings.solver_rank = rank


def multiprocess() -> bool:
    return _settings.multiprocess


def set_multiprocess(value: bool) -> None:
    _settings.multiprocess = bool(value)


def is_root() -> bool:
    """Caffe's ``root_solver()``: rank 0 tests, snapshots and logs."""
    return _settings.solver_rank == 0


def data_shard(phase: int) -> tuple[int, int] | None:
    """``(rank, count)`` when a data layer of ``phase`` keeps only every count-th item (Caffe's
    ``DataLayer::Skip``: item ``offset`` is kept by rank ``offset % count``); None when it keeps all
    (one solver, or the TEST phase, which runs on the root solver only)."""
    if _settings.solver_count == 1 or phase == caffe_pb2.TEST:
        return None
    return _settings.solver_rank, _settings.solver_count


def quiet_unless_root(verbose: bool = False) -> None:
    """As Caffe's ``LOG_IF(INFO, Caffe::root_solver())``: a non-root rank logs WARNING and above only
    (all levels with ``verbose``)."""
    if not is_root() and not verbose:
        logging.getLogger("recaffe").setLevel(logging.WARNING)
