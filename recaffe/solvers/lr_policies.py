"""Learning-rate policies (Caffe's ``SGDSolver::GetLearningRate``), one registered function each.

A policy maps ``(param, iter, current_step)`` to ``(rate, current_step)``; ``iter`` counts the
updates done so far. The arithmetic is Caffe's float code: ``pow(float, int)`` promotes to double
(step, exp, multistep), while ``pow(float, float)`` and ``exp(float)`` are the C library's
``powf``/``expf`` (inv, poly, sigmoid); every other operation rounds to float.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from recaffe import rng
from recaffe.math.floats import f32, libm_float_function
from recaffe.proto import caffe_pb2
from recaffe.registry import LR_POLICIES
from recaffe.solver import SolverError

log = logging.getLogger("recaffe.solver")

Param = caffe_pb2.SolverParameter


def powf(x: float, y: float) -> float:
    """C's float ``powf`` (glibc's when present)."""
    fn = libm_float_function("powf", 2)
    if fn is not None:
        return float(fn(x, y))
    with np.errstate(all="ignore"):
        return float(np.power(np.float32(x), np.float32(y)))


def expf(x: float) -> float:
    return float(rng.expf(np.float32(x)))


def _check(ok: bool, policy: str, field: str, value: float, condition: str) -> None:
    if not ok:
        raise SolverError(f"lr_policy {policy!r} needs {field} {condition}, got {value:g}")


def _times_gamma_power(param: Param, exponent: int) -> float:
    """base_lr · gamma^exponent, with pow in double as Caffe's pow(float, int) is."""
    try:
        power = math.pow(param.gamma, exponent)
    except OverflowError:
        power = math.inf
    return f32(param.base_lr * power)


@LR_POLICIES.register("fixed")
def fixed(param: Param, iter: int, current_step: int) -> tuple[float, int]:
    return param.base_lr, current_step


@LR_POLICIES.register("step")
def step(param: Param, iter: int, current_step: int) -> tuple[float, int]:
    """base_lr · gamma^floor(iter / stepsize); current_step = floor(iter / stepsize)."""
    _check(param.stepsize > 0, "step", "stepsize", param.stepsize, "> 0")
    current_step = iter // param.stepsize
    _check(param.gamma >= 0, "step", "gamma", param.gamma, ">= 0")
    return _times_gamma_power(param, current_step), current_step


@LR_POLICIES.register("exp")
def exp(param: Param, iter: int, current_step: int) -> tuple[float, int]:
    """base_lr · gamma^iter."""
    _check(param.gamma >= 0, "exp", "gamma", param.gamma, ">= 0")
    return _times_gamma_power(param, iter), current_step


@LR_POLICIES.register("inv")
def inv(param: Param, iter: int, current_step: int) -> tuple[float, int]:
    """base_lr · (1 + gamma·iter)^(−power)."""
    _check(param.gamma >= 0, "inv", "gamma", param.gamma, ">= 0")
    base = f32(1.0 + f32(param.gamma * f32(iter)))
    return f32(param.base_lr * powf(base, -param.power)), current_step


@LR_POLICIES.register("multistep")
def multistep(param: Param, iter: int, current_step: int) -> tuple[float, int]:
    """base_lr · gamma^current_step, where current_step advances (at most once per call) when
    iter reaches the next ``stepvalue``."""
    if current_step < len(param.stepvalue) and iter >= param.stepvalue[current_step]:
        current_step += 1
        log.info("MultiStep Status: Iteration %d, step = %d", iter, current_step)
    _check(param.gamma >= 0, "multistep", "gamma", param.gamma, ">= 0")
    return _times_gamma_power(param, current_step), current_step


@LR_POLICIES.register("poly")
def poly(param: Param, iter: int, current_step: int) -> tuple[float, int]:
    """base_lr · (1 − iter/max_iter)^power."""
    with np.errstate(all="ignore"):  # max_iter 0 divides by zero, as in Caffe
        fraction = float(np.float32(iter) / np.float32(param.max_iter))
    return f32(param.base_lr * powf(f32(1.0 - fraction), param.power)), current_step


@LR_POLICIES.register("sigmoid")
def sigmoid(param: Param, iter: int, current_step: int) -> tuple[float, int]:
    """base_lr / (1 + exp(−gamma·(iter − stepsize)))."""
    _check(param.gamma >= 0, "sigmoid", "gamma", param.gamma, ">= 0")
    _check(param.stepsize > 0, "sigmoid", "stepsize", param.stepsize, "> 0")
    shifted = f32(f32(iter) - f32(param.stepsize))
    decay = f32(1.0 / f32(1.0 + expf(f32(-param.gamma * shifted))))
    return f32(param.base_lr * decay), current_step
