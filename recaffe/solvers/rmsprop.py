from __future__ import annotations

from typing import final

from recaffe.registry import SOLVERS
from recaffe.solver import Solver, SolverError
from recaffe.solvers.update_math import moving_average, rms_scaled


@SOLVERS.register("RMSProp")
@final
class RMSPropSolver(Solver):
    """RMSProp: steps scaled by the root of a moving average of squared gradients.

    Update (g = normalized, regularized diff; lr = rate·lr_mult; ρ = rms_decay; δ = delta):
        h ← ρ·h + (1 − ρ)·g² ;  diff ← lr · g / (√h + δ)   (then w ← w − diff)
    Params: rms_decay = 0.99 (0 ≤ ρ < 1), delta = 1e-8; momentum must be 0.
    History: one blob per learnable param (h).
    """

    def check_param(self) -> None:
        p = self.param
        if p.momentum != 0:
            raise SolverError(f"Momentum cannot be used with RMSProp: momentum must be 0, got {p.momentum:g}")
        if not 0 <= p.rms_decay < 1:
            raise SolverError(
                f"rms_decay should lie between 0 and 1 (0 <= rms_decay < 1), got {p.rms_decay:g}")

    def compute_update_value(self, param_id: int, rate: float) -> None:
        diff = self.net.learnable_params[param_id].blob.diff
        history = self.history[param_id].data
        moving_average(history, diff * diff, self.param.rms_decay)
        rms_scaled(diff, history, self.param.delta, self.local_rate(param_id, rate), out=diff)
