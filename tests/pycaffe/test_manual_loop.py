"""docs/manual_sgd_loop.md's numpy (pycaffe) loop beside ``solver.step(1)``: bit-identical weights."""

from __future__ import annotations

import re

import numpy as np
import pytest

import caffe
from recaffe.io import prototxt
from recaffe.proto import caffe_pb2
from tests.conftest import TESTS
from tests.test_manual_loop import NET

DOC = TESTS.parent / "docs" / "manual_sgd_loop.md"


def documented(name: str):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    namespace: dict = {}
    exec(compile(blocks[1], str(DOC), "exec"), namespace)  # noqa: S102  (our own documentation)
    return namespace[name]


def feeder(seed: int):
    rng = np.random.default_rng(seed)

    def feed(net: caffe.Net) -> None:
        net.blobs["x"].data[...] = rng.normal(size=(3, 5))
        net.blobs["y"].data[...] = rng.normal(size=(3, 2))

    return feed


@pytest.mark.parametrize("iter_size", [1, 2])
def test_numpy_loop_is_bit_identical_to_step(tmp_path, iter_size: int) -> None:
    net_param = prototxt.parse_text(NET, caffe_pb2.NetParameter())
    (tmp_path / "net.prototxt").write_text(prototxt.to_text(net_param))
    solver_text = (f'net: "{tmp_path / "net.prototxt"}" base_lr: 0.05 lr_policy: "step" gamma: 0.5 '
                   f"stepsize: 3 momentum: 0.9 weight_decay: 0.01 iter_size: {iter_size} random_seed: 4")
    (tmp_path / "solver.prototxt").write_text(solver_text)
    solver = caffe.SGDSolver(str(tmp_path / "solver.prototxt"))
    param = prototxt.parse_text(solver_text, caffe_pb2.SolverParameter())

    learnable, step = documented("learnable"), documented("numpy_sgd_step")
    caffe.set_random_seed(4)
    net = caffe.Net(str(tmp_path / "net.prototxt"), caffe.TRAIN)
    params = list(learnable(net, net_param))
    history = [np.zeros_like(blob.data) for blob, _, _ in params]
    feed_solver, feed_net = feeder(1), feeder(1)
    for it in range(7):
        for _ in range(iter_size):  # step() runs iter_size passes over the same inputs
            feed_solver(solver.net)
            feed_net(net)
        solver.step(1)
        rate = np.float32(param.base_lr * np.float64(param.gamma) ** (it // param.stepsize))
        step(net, params, history, rate, param.momentum, param.weight_decay, iter_size)
        for name in net.params:
            for mine, theirs in zip(net.params[name], solver.net.params[name]):
                assert np.array_equal(mine.data, theirs.data), f"iteration {it}, layer {name}"
