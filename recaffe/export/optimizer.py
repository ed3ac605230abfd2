"""Caffe's training recipe for PyTorch: ``caffe_optimizer(module, solver)`` -> (optimizer, scheduler).

The optimizer performs Caffe's ``ApplyUpdate`` on the parameters' ``.grad``, in Caffe's order
and float32 arithmetic (recaffe's own update kernels):

1. clip_gradients: scale every gradient by clip/‖g‖ when the global L2 norm exceeds it;
2. per parameter: divide by iter_size (the gradients of iter_size backward passes accumulate,
   as in Caffe), add weight_decay·decay_mult·w (L2) or ·sign(w) (L1), then the solver's rule
   with the local rate lr·lr_mult — SGD's history holds lr·g (Caffe's momentum, not PyTorch's);
3. w ← w − update.

The scheduler sets the rate of every iteration from the solver's ``lr_policy`` (every Caffe
policy, with Caffe's float/double arithmetic); call ``scheduler.step()`` after
``optimizer.step()``. ``lr_mult``/``decay_mult`` come from an exported module's
``caffe_params`` (``recaffe.export.to_torch``); other parameters get 1 and 1.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

import torch

from recaffe.io import prototxt
from recaffe.math.floats import f32
from recaffe.proto import caffe_pb2
from recaffe.registry import LR_POLICIES
from recaffe.solvers.adam import bias_correction
from recaffe.solvers.update_math import axpby, moving_average, rms_scaled

SolverParam: TypeAlias = caffe_pb2.SolverParameter
# (gradient, histories, local rate, solver parameter, t = iter + 1) -> the update, written into g
Rule = Callable[[torch.Tensor, list[torch.Tensor], float, SolverParam, int], None]


def _sgd(g: torch.Tensor, h: list[torch.Tensor], rate: float, p: SolverParam, t: int) -> None:
    axpby(rate, g, p.momentum, h[0])
    g.copy_(h[0])


def _nesterov(g: torch.Tensor, h: list[torch.Tensor], rate: float, p: SolverParam, t: int) -> None:
    previous = h[0].clone()
    axpby(rate, g, p.momentum, h[0])
    axpby(f32(1.0 + p.momentum), h[0], -p.momentum, previous)
    g.copy_(previous)


def _adagrad(g: torch.Tensor, h: list[torch.Tensor], rate: float, p: SolverParam, t: int) -> None:
    h[0].add_(g * g)
    rms_scaled(g, h[0], p.delta, rate, out=g)


def _rmsprop(g: torch.Tensor, h: list[torch.Tensor], rate: float, p: SolverParam, t: int) -> None:
    moving_average(h[0], g * g, p.rms_decay)
    rms_scaled(g, h[0], p.delta, rate, out=g)


def _adadelta(g: torch.Tensor, h: list[torch.Tensor], rate: float, p: SolverParam, t: int) -> None:
    moving_average(h[0], g * g, p.momentum)
    ratio = torch.add(h[1], p.delta)
    ratio.div_(torch.add(h[0], p.delta)).sqrt_()
    g.mul_(ratio)
    moving_average(h[1], g * g, p.momentum)
    g.mul_(rate)


def _adam(g: torch.Tensor, h: list[torch.Tensor], rate: float, p: SolverParam, t: int) -> None:
    correction = bias_correction(p.momentum, p.momentum2, t)
    moving_average(h[0], g, p.momentum)
    moving_average(h[1], g * g, p.momentum2)
    rms_scaled(h[0], h[1], p.delta, f32(rate * correction), out=g)


RULES: dict[str, tuple[Rule, int]] = {  # solver type -> (rule, history tensors per parameter)
    "SGD": (_sgd, 1),
    "Nesterov": (_nesterov, 1),
    "AdaGrad": (_adagrad, 1),
    "RMSProp": (_rmsprop, 1),
    "AdaDelta": (_adadelta, 2),
    "Adam": (_adam, 2),
}


class CaffeOptimizer(torch.optim.Optimizer):
    """Caffe's solver update for torch parameters; one param group per parameter, holding its
    ``lr_mult`` and ``decay_mult``; ``lr`` is the solver's rate (set by ``CaffeLR``)."""

    def __init__(self, params: Iterable[tuple[torch.Tensor, float, float]], solver: SolverParam) -> None:
        if solver.type not in RULES:
            raise ValueError(f"solver type {solver.type!r} has no Caffe rule here "
                             f"(known: {', '.join(RULES)})")
        if solver.regularization_type not in ("L1", "L2"):
            raise ValueError(f"Unknown regularization type: {solver.regularization_type!r} "
                             f"(regularization_type must be L2 or L1)")
        self.solver = solver
        self.iter = 0
        groups = [{"params": [w], "lr_mult": lr_mult, "decay_mult": decay_mult}
                  for w, lr_mult, decay_mult in params]
        super().__init__(groups, {"lr": solver.base_lr})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> None:  # type: ignore[override]
        if closure is not None:
            raise ValueError("CaffeOptimizer takes no closure: run iter_size backward passes, then step()")
        p = self.solver
        params = [(group, group["params"][0]) for group in self.param_groups]
        grads = [w.grad.clone() if w.grad is not None else torch.zeros_like(w) for _, w in params]
        self._clip(grads)
        rule, count = RULES[p.type]
        for (group, w), g in zip(params, grads):
            if p.iter_size > 1:
                g.mul_(f32(1.0 / p.iter_size))
            local_decay = f32(p.weight_decay * group["decay_mult"])
            if local_decay:
                g.add_((w if p.regularization_type == "L2" else torch.sign(w)) * local_decay)
            state = self.state[w]
            if "history" not in state:
                state["history"] = [torch.zeros_like(w) for _ in range(count)]
            rule(g, state["history"], f32(group["lr"] * group["lr_mult"]), p, self.iter + 1)
            w.sub_(g)
        self.iter += 1

    def state_dict(self) -> dict[str, Any]:
        """torch's optimizer state plus the iteration count (Adam's bias correction needs it)."""
        return {**super().state_dict(), "caffe_iter": self.iter}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        self.iter = int(state.pop("caffe_iter", 0))
        super().load_state_dict(state)

    def _clip(self, grads: list[torch.Tensor]) -> None:
        clip = self.solver.clip_gradients
        if clip < 0:
            return
        sumsq = 0.0
        for g in grads:
            sumsq = f32(sumsq + float((g * g).sum()))
        l2norm = f32(sumsq**0.5)
        if l2norm > clip:
            for g in grads:
                g.mul_(f32(clip / l2norm))


class CaffeLR(torch.optim.lr_scheduler.LRScheduler):
    """The solver's ``lr_policy``: after ``n`` calls of ``step()``, the rate of Caffe's iteration n."""

    def __init__(self, optimizer: CaffeOptimizer, solver: SolverParam) -> None:
        self.policy = LR_POLICIES.get(solver.lr_policy)
        self.solver = solver
        self.current_step = 0
        super().__init__(optimizer)

    def state_dict(self) -> dict[str, Any]:
        """The position (last_epoch, current_step, ...), without the solver and policy, which the
        scheduler is built from."""
        return {k: v for k, v in super().state_dict().items() if k not in ("solver", "policy")}

    def get_lr(self) -> list[float]:  # type: ignore[override]
        rate, self.current_step = self.policy(self.solver, self.last_epoch, self.current_step)
        return [rate] * len(self.optimizer.param_groups)


def caffe_optimizer(
    module: torch.nn.Module, solver: SolverParam | str | os.PathLike[str]
) -> tuple[CaffeOptimizer, CaffeLR]:
    """Caffe's solver for ``module``: a solver.prototxt path or a SolverParameter."""
    param = solver if isinstance(solver, caffe_pb2.SolverParameter) else prototxt.read_solver_param(solver)
    multipliers: dict[str, tuple[float, float]] = getattr(module, "caffe_params", {})
    params = [(w, *multipliers.get(name, (1.0, 1.0))) for name, w in module.named_parameters()]
    optimizer = CaffeOptimizer(params, param)
    return optimizer, CaffeLR(optimizer, param)
