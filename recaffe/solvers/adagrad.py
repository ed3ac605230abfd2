from __future__ import annotations

from typing import final

from recaffe.registry import SOLVERS
from recaffe.solver import Solver, SolverError
from recaffe.solvers.update_math import rms_scaled


@SOLVERS.register("AdaGrad")
@final
class AdaGradSolver(Solver):
    """AdaGrad: steps scaled by the root of the summed squared gradients.

    Update (g = normalized, regularized diff; lr = rate·lr_mult; δ = delta):
        h ← h + g² ;  diff ← lr · g / (√h + δ)   (then w ← w − diff)
    Params: delta = 1e-8; momentum must be 0.
    History: one blob per learnable param (h).
    """

    def check_param(self) -> None:
        if self.param.momentum != 0:
            raise SolverError(f"Momentum cannot be used with AdaGrad: momentum must be 0, "
                              f"got {self.param.momentum:g}")

    def compute_update_value(self, param_id: int, rate: float) -> None:
        diff = self.net.learnable_params[param_id].blob.diff
        history = self.history[param_id].data
        history.add_(diff * diff)
        rms_scaled(diff, history, self.param.delta, self.local_rate(param_id, rate), out=diff)
