"""docs/manual_sgd_loop.md's loop, executed beside ``solver.step(1)``: the weights stay bit-identical."""

from __future__ import annotations

import logging
import re

import pytest
import torch

import recaffe
from recaffe.io import prototxt
from recaffe.proto import caffe_pb2
from tests.conftest import TESTS

DOC = TESTS.parent / "docs" / "manual_sgd_loop.md"

NET = """
name: "mults"
layer { name: "data" type: "Input" top: "x" top: "y"
        input_param { shape { dim: 3 dim: 5 } shape { dim: 3 dim: 2 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "h"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        inner_product_param { num_output: 4 weight_filler { type: "xavier" }
                              bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "h" top: "h" }
layer { name: "ip2" type: "InnerProduct" bottom: "h" top: "z" param { lr_mult: 0.5 decay_mult: 3 }
        inner_product_param { num_output: 2 bias_term: false weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "z" bottom: "y" top: "loss" }
"""


def manual_sgd_step():
    block = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102  (our own documentation)
    return namespace["manual_sgd_step"]


def feed(net: recaffe.Net) -> None:
    """Different random rows before every forward pass, the same stream for both nets."""
    generator = torch.Generator().manual_seed(11)

    def before_forward(layer_id: int) -> None:
        if layer_id == 0:
            net.blobs["x"].data.copy_(torch.randn(3, 5, generator=generator))
            net.blobs["y"].data.copy_(torch.randn(3, 2, generator=generator))

    net.before_forward.append(before_forward)


@pytest.mark.parametrize(
    ("fields", "clips"),
    [
        ('lr_policy: "step" gamma: 0.5 stepsize: 3 momentum: 0.9 weight_decay: 0.01 iter_size: 2', False),
        ('lr_policy: "inv" gamma: 0.1 power: 0.75 momentum: 0.5 weight_decay: 0.1 clip_gradients: 0.5', True),
        ('lr_policy: "fixed" iter_size: 3 clip_gradients: 0.2', True),
    ],
)
def test_documented_loop_is_bit_identical_to_step(fields: str, clips: bool, caplog) -> None:
    caplog.set_level(logging.INFO, logger="recaffe.solver")
    param = prototxt.parse_text(f"base_lr: 0.05 random_seed: 4 {fields}", caffe_pb2.SolverParameter())
    param.net_param.CopyFrom(prototxt.parse_text(NET, caffe_pb2.NetParameter()))
    solver = recaffe.load_solver(param)
    feed(solver.net)
    initial = [p.blob.data.clone() for p in solver.net.learnable_params]

    step = manual_sgd_step()
    recaffe.set_random_seed(param.random_seed)
    net = recaffe.Net(param.net_param, recaffe.TRAIN)
    feed(net)
    history = [torch.zeros_like(p.blob.data) for p in net.learnable_params]
    for iteration in range(8):
        solver.step(1)
        step(net, param, history, iteration)
        for ours, theirs in zip(net.learnable_params, solver.net.learnable_params):
            assert torch.equal(ours.blob.data, theirs.blob.data), f"iteration {iteration}"
        for mine, solvers in zip(history, solver.history):
            assert torch.equal(mine, solvers.data)
    assert all(not torch.equal(p.blob.data, w) for p, w in zip(net.learnable_params, initial))
    assert any(r.getMessage().startswith("Gradient clipping") for r in caplog.records) == clips
