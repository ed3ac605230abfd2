"""The PyTorch eager yardstick: the two training nets written directly in PyTorch.

Idiomatic eager PyTorch: ``nn.Sequential`` (in-place ReLU), ``nn.CrossEntropyLoss``,
``torch.optim.SGD(momentum, weight_decay)`` with the Caffe nets' learning-rate multipliers as
param groups (weights ×1, biases ×2, weight decay on both), and ``LambdaLR`` for Caffe's "inv"
rate policy. This module imports only torch, so its memory can be measured on its own; the
settings are checked against the published solver files by ``benchmarks.run``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn


def lenet() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.MaxPool2d(2, 2),
        nn.Conv2d(20, 50, 5), nn.MaxPool2d(2, 2),
        nn.Flatten(), nn.Linear(800, 500), nn.ReLU(inplace=True), nn.Linear(500, 10),
    )


def cifar10_quick() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 32, 5, padding=2), nn.MaxPool2d(3, 2, ceil_mode=True), nn.ReLU(inplace=True),
        nn.Conv2d(32, 32, 5, padding=2), nn.ReLU(inplace=True), nn.AvgPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(inplace=True), nn.AvgPool2d(3, 2, ceil_mode=True),
        nn.Flatten(), nn.Linear(1024, 64), nn.Linear(64, 10),
    )


@dataclass(frozen=True)
class Settings:
    """The published solver's SGD settings (lenet_solver / cifar10_quick_solver)."""

    base_lr: float
    momentum: float
    weight_decay: float
    lr_policy: str
    gamma: float = 0.0
    power: float = 0.0

    def rate_multiplier(self) -> Callable[[int], float]:
        if self.lr_policy == "inv":
            return lambda it: (1.0 + self.gamma * it) ** (-self.power)
        return lambda it: 1.0


MODELS: dict[str, Callable[[], nn.Sequential]] = {"lenet": lenet, "cifar10_quick": cifar10_quick}
SETTINGS = {
    "lenet": Settings(0.01, 0.9, 0.0005, "inv", gamma=0.0001, power=0.75),
    "cifar10_quick": Settings(0.001, 0.9, 0.004, "fixed"),
}
# (lr_mult, decay_mult) of every weight and every bias in both prototxts
WEIGHT_MULTIPLIERS, BIAS_MULTIPLIERS = (1.0, 1.0), (2.0, 1.0)


def multipliers(model: nn.Module) -> list[tuple[float, float]]:
    return [BIAS_MULTIPLIERS if name.endswith("bias") else WEIGHT_MULTIPLIERS
            for name, _ in model.named_parameters()]


class Trainer:
    """One SGD iteration per ``step(data, label)`` of an eager ``nn.Sequential``."""

    def __init__(self, name: str, initial: Sequence[torch.Tensor] | None = None) -> None:
        """The ``name`` model, with its parameters copied from ``initial`` when given."""
        self.model = MODELS[name]()
        settings = SETTINGS[name]
        groups: dict[tuple[float, float], list[nn.Parameter]] = {}
        params = list(self.model.parameters())
        with torch.no_grad():
            for i, (p, mults) in enumerate(zip(params, multipliers(self.model))):
                if initial is not None:
                    p.copy_(initial[i].view(p.shape))
                groups.setdefault(mults, []).append(p)
        self.optimizer = torch.optim.SGD(
            [{"params": ps, "lr": settings.base_lr * lr_mult, "weight_decay": settings.weight_decay * decay}
             for (lr_mult, decay), ps in groups.items()],
            lr=settings.base_lr, momentum=settings.momentum)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, settings.rate_multiplier())
        self.criterion = nn.CrossEntropyLoss()

    def step(self, data: torch.Tensor, label: torch.Tensor) -> float:
        self.optimizer.zero_grad()
        loss = self.criterion(self.model(data), label)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return loss.item()
