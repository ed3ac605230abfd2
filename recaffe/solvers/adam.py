from __future__ import annotations

from typing import final

import numpy as np

from recaffe.math.floats import f32
from recaffe.registry import SOLVERS
from recaffe.solver import Solver
from recaffe.solvers.update_math import moving_average, rms_scaled


def bias_correction(beta1: float, beta2: float, t: int) -> float:
    """√(1 − β2^t) / (1 − β1^t) in double (Caffe's pow(float, int)), rounded to float."""
    with np.errstate(all="ignore"):  # β = 1 gives inf/nan as in C
        one = np.float64(1.0)
        return f32(float(np.sqrt(one - np.float64(beta2) ** t) / (one - np.float64(beta1) ** t)))


@SOLVERS.register("Adam")
@final
class AdamSolver(Solver):
    """Adam: bias-corrected moving averages of the gradient and its square.

    Update (g = normalized, regularized diff; lr = rate·lr_mult; β1 = momentum;
    β2 = momentum2; δ = delta; t = iter + 1):
        m ← β1·m + (1 − β1)·g ;  v ← β2·v + (1 − β2)·g² ;
        diff ← lr · √(1 − β2^t) / (1 − β1^t) · m / (√v + δ)   (then w ← w − diff)
    NOTE: δ is added to √v without bias correction, and the correction is computed in double
    (Caffe's pow(float, int)) before rounding to float.
    Params: momentum (β1, typically 0.9), momentum2 = 0.999, delta = 1e-8.
    History: 2N blobs, m for every learnable param, then v for every learnable param.
    """

    history_blobs_per_param = 2

    def compute_update_value(self, param_id: int, rate: float) -> None:
        beta1, beta2 = self.param.momentum, self.param.momentum2
        correction = bias_correction(beta1, beta2, self.iter + 1)
        diff = self.net.learnable_params[param_id].blob.diff
        m = self.history[param_id].data
        v = self.history[len(self.net.learnable_params) + param_id].data
        moving_average(m, diff, beta1)
        moving_average(v, diff * diff, beta2)
        step = f32(self.local_rate(param_id, rate) * correction)
        rms_scaled(m, v, self.param.delta, step, out=diff)
