"""GradientSync: Caffe's ``NCCL<Dtype>`` (parallel.cpp) over ``torch.distributed``.

Attached to a solver as a callback (``solver.add_callback(sync.on_start, sync.on_gradients_ready)``),
it makes N ranks train one model:

* ``broadcast()`` copies rank 0's learnable parameters to every rank (Caffe's ``Broadcast``; each
  rank seeded ``random_seed + rank``, so without it their initial weights differ);
* ``on_gradients_ready()`` sums the parameter diffs over the ranks and scales them by 1/N, so every
  rank applies the same update: N ranks of batch B step as one process with ``iter_size: N`` over
  the same N·B items (the Data layers deal items round robin, see ``settings.data_shard``).

The same all-reduce carries rank 0's pending solver action (from SIGINT/SIGHUP, see
``agreed_action``): all ranks stop, or rank 0 snapshots, after the same iteration.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from recaffe.blob import Blob
from recaffe.distributed.world import World
from recaffe.math.floats import f32
from recaffe.solver import NONE, SNAPSHOT, STOP, Solver

_ACTION_CODES = {NONE: 0, STOP: 1, SNAPSHOT: 2}


class GradientSync:
    """Keeps the learnable parameters of ``solver``'s train net equal on every rank of ``world``."""

    def __init__(self, solver: Solver, world: World) -> None:
        self.world = world
        self._blobs: list[Blob] = [p.blob for p in solver.net.learnable_params]
        self._local_action: Callable[[], str] | None = None
        self._agreed = NONE

    def broadcast(self) -> None:
        """Every rank takes rank 0's parameter data."""
        flat = self._flatten([b.data for b in self._blobs])
        self.world.broadcast(flat)
        self._unflatten(flat, [b.data for b in self._blobs])

    def on_start(self) -> None:
        """Nothing: parameters only change in the (shared) update."""

    def on_gradients_ready(self) -> None:
        """diff := (Σ_ranks diff) / N, with rank 0's pending action in the same all-reduce."""
        diffs = [b.diff for b in self._blobs]
        code = _ACTION_CODES[self._local_action()] if self._local_action is not None else 0
        flat = self._flatten(diffs, extra=code)
        self.world.all_reduce(flat)
        self._agreed = next(a for a, c in _ACTION_CODES.items() if c == round(float(flat[-1])))
        flat = flat[:-1]
        flat.mul_(f32(1.0 / self.world.size))
        self._unflatten(flat, diffs)

    def agree_on_actions(self, local_action: Callable[[], str] | None) -> Callable[[], str]:
        """The solver's action function for this rank: rank 0's ``local_action`` (its signal
        handler), as agreed in the last all-reduce. It is read once per iteration: a request that
        comes during rank 0's test pass takes effect after the next iteration. Only rank 0
        snapshots; a STOP reaches every rank."""
        self._local_action = local_action if self.world.rank == 0 else None

        def agreed_action() -> str:
            action, self._agreed = self._agreed, NONE
            return action if action == STOP or self.world.rank == 0 else NONE

        return agreed_action

    def _flatten(self, tensors: list[torch.Tensor], extra: float | None = None) -> torch.Tensor:
        first = tensors[0] if tensors else torch.zeros(0, device=self.world.device)
        dtype, device = first.dtype, first.device
        parts = [t.reshape(-1) for t in tensors]
        if extra is not None:
            parts.append(torch.full((1,), float(extra), dtype=dtype, device=device))
        return torch.cat(parts) if parts else first

    @staticmethod
    def _unflatten(flat: torch.Tensor, tensors: list[torch.Tensor]) -> None:
        offset = 0
        for t in tensors:
            t.copy_(flat[offset:offset + t.numel()].view(t.shape))
            offset += t.numel()
