"""Every lr_policy against its formula, Caffe's float rounding, current_step, and the CHECKs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recaffe.io import prototxt
from recaffe.proto import caffe_pb2
from recaffe.registry import LR_POLICIES
from recaffe.solver import SolverError
from tests.solvers import least_squares as ls


def solver_param(text: str) -> caffe_pb2.SolverParameter:
    return prototxt.parse_text(text, caffe_pb2.SolverParameter())


def f(x: float) -> float:
    return float(np.float32(x))


# policy -> (fields, the rate as a function of (param, iter, current_step) in exact arithmetic)
FORMULAS = {
    "fixed": ("base_lr: 0.01", lambda p, i, s: p.base_lr),
    "step": ("base_lr: 0.05 gamma: 0.5 stepsize: 3",
             lambda p, i, s: p.base_lr * p.gamma ** (i // p.stepsize)),
    "exp": ("base_lr: 0.1 gamma: 0.9", lambda p, i, s: p.base_lr * p.gamma**i),
    "inv": ("base_lr: 0.1 gamma: 0.1 power: 0.75", lambda p, i, s: p.base_lr * (1 + p.gamma * i) ** -p.power),
    "multistep": ("base_lr: 0.1 gamma: 0.5 stepvalue: 2 stepvalue: 5",
                  lambda p, i, s: p.base_lr * p.gamma**s),
    "poly": ("base_lr: 0.1 power: 2.0 max_iter: 10",
             lambda p, i, s: p.base_lr * (1 - i / p.max_iter) ** p.power),
    "sigmoid": ("base_lr: 0.1 gamma: 0.5 stepsize: 4",
                lambda p, i, s: p.base_lr / (1 + math.exp(-p.gamma * (i - p.stepsize)))),
}


@pytest.mark.parametrize("policy", sorted(FORMULAS))
def test_policy_matches_its_formula(policy: str) -> None:
    fields, formula = FORMULAS[policy]
    param = solver_param(f'lr_policy: "{policy}" {fields}')
    step = 0
    for i in range(12):
        rate, step = LR_POLICIES.get(policy)(param, i, step)
        assert rate == f(rate), "the rate is a float32 value"
        assert rate == pytest.approx(formula(param, i, step), rel=1e-6, abs=1e-12), f"iter {i}"


def test_step_policy_sets_current_step_to_iter_over_stepsize() -> None:
    param = solver_param("base_lr: 0.05 gamma: 0.5 stepsize: 3")
    rates = [LR_POLICIES.get("step")(param, i, 99) for i in range(7)]
    assert [s for _, s in rates] == [0, 0, 0, 1, 1, 1, 2]
    assert [r for r, _ in rates] == [f(0.05)] * 3 + [f(0.05) / 2] * 3 + [f(0.05) / 4]


def test_multistep_advances_at_most_one_step_per_call() -> None:
    param = solver_param("base_lr: 1 gamma: 0.1 stepvalue: 2 stepvalue: 3 stepvalue: 4")
    multistep = LR_POLICIES.get("multistep")
    assert multistep(param, 1, 0) == (1.0, 0)
    assert multistep(param, 10, 0) == (f(0.1), 1)  # far past three step values: still one step
    assert multistep(param, 10, 1)[1] == 2
    assert multistep(param, 10, 3) == (f(1 * math.pow(f(0.1), 3)), 3)  # no step values left


def test_rates_use_caffes_float_arithmetic() -> None:
    """inv/poly/sigmoid round every float operation; step/exp/multistep take pow in double."""
    inv = solver_param("base_lr: 0.1 gamma: 0.1 power: 0.75")
    base = f(1 + f(f(0.1) * 7))
    assert LR_POLICIES.get("inv")(inv, 7, 0)[0] == f(f(0.1) * f(base ** -f(0.75)))
    exp = solver_param("base_lr: 0.1 gamma: 0.9")
    assert LR_POLICIES.get("exp")(exp, 5, 0)[0] == f(f(0.1) * f(0.9) ** 5)


def test_rate_overflow_gives_inf_as_in_c() -> None:
    param = solver_param("base_lr: 1 gamma: 1e30")
    assert LR_POLICIES.get("exp")(param, 40, 0)[0] == math.inf


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('lr_policy: "step" base_lr: 1 gamma: 0.5', "stepsize > 0, got 0"),
        ('lr_policy: "step" base_lr: 1 stepsize: 2 gamma: -1', "gamma >= 0, got -1"),
        ('lr_policy: "exp" base_lr: 1 gamma: -0.5', "gamma >= 0"),
        ('lr_policy: "inv" base_lr: 1 gamma: -0.5', "gamma >= 0"),
        ('lr_policy: "multistep" base_lr: 1 gamma: -0.5', "gamma >= 0"),
        ('lr_policy: "sigmoid" base_lr: 1 gamma: 0.5', "stepsize > 0"),
        ('lr_policy: "sigmoid" base_lr: 1 gamma: -0.5 stepsize: 1', "gamma >= 0"),
    ],
)
def test_policy_checks(text: str, message: str) -> None:
    param = solver_param(text)
    with pytest.raises(SolverError, match=message):
        LR_POLICIES.get(param.lr_policy)(param, 0, 0)


def test_no_policy_is_a_clear_error_at_the_first_update() -> None:
    param = ls.solver_param()
    param.lr_policy = ""
    solver, _ = ls.make_solver(param)  # as in Caffe, a solver may be built for its nets alone
    with pytest.raises(SolverError, match="Unknown learning rate policy"):
        solver.step(1)
    assert solver.iter == 0


@pytest.mark.parametrize("policy", ["Fixed", "cosine"])
def test_unknown_policy_is_a_clear_error_at_load(policy: str) -> None:
    # Caffe fails at the first update; recaffe checks the solver file when it loads it
    param = ls.solver_param()
    param.lr_policy = policy
    with pytest.raises(SolverError, match="Unknown learning rate policy"):
        ls.make_solver(param)


def test_solver_evaluates_the_policy_at_the_completed_update_count() -> None:
    """The rate of update k is the policy at iter k, before the increment; multistep's
    current_step moves inside apply_update."""
    param = ls.solver_param(policy="multistep", extra="gamma: 0.5 stepvalue: 2 stepvalue: 3")
    solver, _ = ls.make_solver(param)
    seen = []
    solver.add_callback(lambda: None, lambda: seen.append((solver.iter, solver.current_step)))
    solver.step(5)
    assert seen == [(0, 0), (1, 0), (2, 0), (3, 1), (4, 2)]
    assert solver.learning_rate() == f(0.25)
