"""Data-parallel training on ``torch.distributed`` with Caffe's multi-GPU semantics.

* ``settings``: solver count, rank and multiprocess flag of this process (Caffe's singleton), the
  Data layers' round-robin sharding and root-only logging;
* ``rendezvous``: where the ranks meet (torchrun's environment or a ``new_uid()``), the timeout;
* ``world``: joining a run, collectives that never hang on a dead rank;
* ``watchdog``: names a dead rank and stops the others within ``RECAFFE_DIST_TIMEOUT``;
* ``sync``: ``GradientSync``, Caffe's NCCL object (broadcast, gradient all-reduce, shared solver
  actions);
* ``launch``: ``recaffe train -gpu 0,1`` spawning one process per device.

See docs/distributed.md.
"""

from recaffe.distributed.rendezvous import (
    DistributedError,
    EnvWorld,
    Rendezvous,
    env_world,
    fault_timeout,
    new_uid,
)
from recaffe.distributed.settings import (
    data_shard,
    is_root,
    multiprocess,
    set_multiprocess,
    set_solver_count,
    set_solver_rank,
    solver_count,
    solver_rank,
)
from recaffe.distributed.world import World, membership

__all__ = [
    "DistributedError", "EnvWorld", "Rendezvous", "World", "data_shard", "env_world", "fault_timeout",
    "is_root", "membership", "multiprocess", "new_uid", "set_multiprocess", "set_solver_count",
    "set_solver_rank", "solver_count", "solver_rank",
]
