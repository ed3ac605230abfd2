"""Caffe's inductive least-squares check for every solver (TestLeastSquaresUpdate*).

After K solver iterations, the (K+1)-th update is computed in float64 from the closed-form
gradient ∇ = Xᵀ(Xw + b − y)/N + λ·w and the solver's own history, then compared with the
solver's (K+1)-th step: the new weights and the new history.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.solvers import least_squares as ls

DELTA = 1e-8
RMS_DECAY = 0.95
MOMENTUM2 = 0.999


def gradient(solver, feeder, weight_decay: float) -> list[np.ndarray]:
    weight_decay = float(np.float32(weight_decay))
    x, y = feeder.rows(feeder.position)
    x = x.reshape(x.shape[0], -1).double().numpy()
    y = y.double().numpy().reshape(-1)
    w, b = (p.blob.data.double().numpy().reshape(-1) for p in solver.net.learnable_params)
    residual = x @ w + b[0] - y
    return [x.T @ residual / len(y) + weight_decay * w, np.array([residual.mean()]) + weight_decay * b]


def expected_step(kind: str, g, h, h2, lr: float, momentum: float, t: int):
    """(step subtracted from w, new history, new second history) for one param, in float64
    (from the float32 values the SolverParameter holds)."""
    lr, momentum, delta, rms_decay, momentum2 = (float(np.float32(v)) for v in (lr, momentum, DELTA,
                                                                               RMS_DECAY, MOMENTUM2))
    if kind == "SGD":
        step = lr * g + momentum * h
        return step, step, None
    if kind == "Nesterov":
        new_h = lr * g + momentum * h
        return (1 + momentum) * new_h - momentum * h, new_h, None
    if kind == "AdaGrad":
        new_h = h + g * g
        return lr * g / (np.sqrt(new_h) + delta), new_h, None
    if kind == "RMSProp":
        new_h = rms_decay * h + (1 - rms_decay) * g * g
        return lr * g / (np.sqrt(new_h) + delta), new_h, None
    if kind == "AdaDelta":
        new_h = momentum * h + (1 - momentum) * g * g
        update = g * np.sqrt((h2 + delta) / (new_h + delta))
        return lr * update, new_h, momentum * h2 + (1 - momentum) * update * update
    if kind == "Adam":
        m = momentum * h + (1 - momentum) * g
        v = momentum2 * h2 + (1 - momentum2) * g * g
        correction = math.sqrt(1 - momentum2**t) / (1 - momentum**t)
        return lr * correction * m / (np.sqrt(v) + delta), m, v
    raise AssertionError(kind)


def assert_near(actual: torch.Tensor, expected: np.ndarray, atol: float = 0.0) -> None:
    """Float32 results against a float64 computation: 1e-5 of the expected values' magnitude."""
    scale = max(float(np.abs(expected).max()), 1e-30)
    torch.testing.assert_close(actual.double().reshape(-1), torch.from_numpy(expected).reshape(-1),
                               rtol=1e-5, atol=max(1e-5 * scale, atol))


# (solver type, learning rate, weight decay, momentum): Caffe's cases for each solver
CASES = [
    ("SGD", 1.0, 0.0, 0.0), ("SGD", 0.25, 0.0, 0.0), ("SGD", 0.01, 0.5, 0.0),
    ("SGD", 0.01, 0.0, 0.5), ("SGD", 0.01, 0.5, 0.5),
    ("Nesterov", 1.0, 0.0, 0.0), ("Nesterov", 0.01, 0.5, 0.0), ("Nesterov", 0.01, 0.5, 0.9),
    ("AdaGrad", 1.0, 0.0, 0.0), ("AdaGrad", 0.25, 0.5, 0.0),
    ("RMSProp", 1.0, 0.0, 0.0), ("RMSProp", 0.25, 0.5, 0.0),
    ("AdaDelta", 1.0, 0.0, 0.95), ("AdaDelta", 0.5, 0.1, 0.95),
    ("Adam", 0.01, 0.0, 0.9), ("Adam", 0.01, 0.5, 0.9),
]
SOLVER_TYPES = sorted({case[0] for case in CASES})


EXTRA = f"delta: {DELTA} rms_decay: {RMS_DECAY} momentum2: {MOMENTUM2}"


@pytest.mark.parametrize("share", [False, True], ids=["plain", "shared"])
@pytest.mark.parametrize("iters", [0, 1, 4])
@pytest.mark.parametrize(("kind", "lr", "weight_decay", "momentum"), CASES)
def test_least_squares_update(kind, lr, weight_decay, momentum, iters, share) -> None:
    param = ls.solver_param(kind, lr, weight_decay, momentum, share=share, extra=EXTRA)
    solver, feeder = ls.make_solver(param)
    solver.step(iters)
    assert solver.iter == iters
    num = len(solver.net.learnable_params)
    grads = gradient(solver, feeder, weight_decay)
    before = [t.double().numpy().reshape(-1) for t in ls.learnable(solver)]
    hist = [t.double().numpy().reshape(-1) for t in ls.history(solver)]
    expected = [
        expected_step(kind, grads[i], hist[i], hist[num + i] if len(hist) > num else None,
                      lr, momentum, iters + 1)
        for i in range(num)
    ]
    solver.step(1)
    after = ls.learnable(solver)
    new_hist = ls.history(solver)
    for i, (step, new_h, new_h2) in enumerate(expected):
        assert_near(after[i], before[i] - step)
        taken = torch.from_numpy(before[i]).reshape(after[i].shape) - after[i].double()
        # the step is known to the float32 resolution of the weights it was subtracted from
        assert_near(taken, step, atol=4 * float(np.spacing(np.float32(np.abs(before[i]).max()))))
        assert_near(new_hist[i], new_h)
        if new_h2 is not None:
            assert_near(new_hist[num + i], new_h2)


@pytest.mark.parametrize(("kind", "lr", "weight_decay", "momentum"), [c for c in CASES if c[2] and c[3]]
                         + [("AdaGrad", 0.25, 0.5, 0.0), ("RMSProp", 0.25, 0.5, 0.0)])
def test_iter_size_accumulation_matches_full_batch(kind, lr, weight_decay, momentum) -> None:
    """CheckAccumulation: iter_size 2 over half batches ≈ one full batch (the rows are the same)."""
    runs = []
    for iter_size in (1, 2):
        param = ls.solver_param(kind, lr, weight_decay, momentum, iter_size=iter_size,
                                extra=EXTRA)
        solver, _ = ls.make_solver(param)
        solver.step(4)
        runs.append(ls.learnable(solver))
    for full, accumulated in zip(*runs):
        torch.testing.assert_close(accumulated, full, rtol=1e-5, atol=1e-6)
