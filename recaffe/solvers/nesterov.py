from __future__ import annotations

from typing import final

from recaffe.math.floats import f32
from recaffe.registry import SOLVERS
from recaffe.solver import Solver
from recaffe.solvers.update_math import axpby


@SOLVERS.register("Nesterov")
@final
class NesterovSolver(Solver):
    """Nesterov's accelerated gradient in Caffe's "step back, then over-step" form.

    Update (g = normalized, regularized diff; lr = rate·lr_mult; μ = momentum):
        h_prev ← h ;  h ← μ·h + lr·g ;  diff ← (1 + μ)·h − μ·h_prev   (then w ← w − diff)
    Params: momentum = 0.
    History: one blob per learnable param (h).
    """

    def compute_update_value(self, param_id: int, rate: float) -> None:
        momentum = self.param.momentum
        diff = self.net.learnable_params[param_id].blob.diff
        history = self.history[param_id].data
        update = history.clone()
        axpby(self.local_rate(param_id, rate), diff, momentum, history)
        axpby(f32(1.0 + momentum), history, -momentum, update)
        diff.copy_(update)
