from __future__ import annotations

from typing import final

from recaffe.registry import SOLVERS
from recaffe.solver import Solver
from recaffe.solvers.update_math import axpby


@SOLVERS.register("SGD")
@final
class SGDSolver(Solver):
    """Stochastic gradient descent with momentum.

    Update (g = normalized, regularized diff; lr = rate·lr_mult; μ = momentum):
        h ← μ·h + lr·g ;  diff ← h   (then w ← w − diff)
    NOTE: h holds the last step including the rate, unlike PyTorch's SGD (v ← μ·v + g;
    w ← w − lr·v); the two differ whenever the rate changes.
    Params: momentum = 0.
    History: one blob per learnable param (h).
    """

    def compute_update_value(self, param_id: int, rate: float) -> None:
        diff = self.net.learnable_params[param_id].blob.diff
        history = self.history[param_id].data
        axpby(self.local_rate(param_id, rate), diff, self.param.momentum, history)
        diff.copy_(history)
