"""How a test pass turns a net's outputs into scores: Caffe's mean per output element, or an
evaluator a plug-in provides for nets whose outputs are not fixed-size scores.

A Caffe fork may score its test nets differently (SSD's solver computes the mean average precision
from its DetectionEvaluate rows, whose count changes from batch to batch). A fork registers a
factory in ``EVALUATORS``; ``evaluator_for(net, solver_param)`` returns the first evaluator a
factory gives for the net (the solver's parameter, None for ``caffe test``, may carry the fork's
solver fields), or None, and then the solver and ``caffe test`` average the outputs as Caffe does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from recaffe.proto import caffe_pb2

if TYPE_CHECKING:
    from recaffe.net import Net


class OutputEvaluator(Protocol):
    def add(self, net: Net) -> None:
        """Take in the outputs of one forward pass."""

    def results(self) -> list[tuple[str, float]]:
        """(name, value) per score, after every pass; also logs per-class detail where it has any."""


EVALUATORS: list[Callable[[Net, caffe_pb2.SolverParameter | None], OutputEvaluator | None]] = []


def evaluator_for(net: Net, solver_param: caffe_pb2.SolverParameter | None = None) -> OutputEvaluator | None:
    for factory in EVALUATORS:
        evaluator = factory(net, solver_param)
        if evaluator is not None:
            return evaluator
    return None
