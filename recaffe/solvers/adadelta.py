from __future__ import annotations

from typing import final

import torch

from recaffe.registry import SOLVERS
from recaffe.solver import Solver
from recaffe.solvers.update_math import moving_average


@SOLVERS.register("AdaDelta")
@final
class AdaDeltaSolver(Solver):
    """AdaDelta: the gradient scaled by RMS(past updates) / RMS(past gradients).

    Update (g = normalized, regularized diff; lr = rate·lr_mult; μ = momentum; δ = delta):
        h ← μ·h + (1 − μ)·g² ;  u ← g · √((h2 + δ) / (h + δ)) ;  h2 ← μ·h2 + (1 − μ)·u² ;
        diff ← lr · u   (then w ← w − diff)
    NOTE: h2 accumulates u before the rate is applied; Zeiler's method corresponds to base_lr 1.
    Params: momentum (the decay μ, typically 0.95), delta = 1e-8.
    History: 2N blobs, h for every learnable param, then h2 for every learnable param.
    """

    history_blobs_per_param = 2

    def compute_update_value(self, param_id: int, rate: float) -> None:
        momentum, delta = self.param.momentum, self.param.delta
        diff = self.net.learnable_params[param_id].blob.diff
        gradients = self.history[param_id].data
        updates = self.history[len(self.net.learnable_params) + param_id].data
        moving_average(gradients, diff * diff, momentum)
        ratio = torch.add(updates, delta)
        ratio.div_(torch.add(gradients, delta)).sqrt_()
        diff.mul_(ratio)
        moving_average(updates, diff * diff, momentum)
        diff.mul_(self.local_rate(param_id, rate))
