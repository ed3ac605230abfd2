"""Caffe's least-squares solver problem (test_gradient_based_solver.cpp), fed through Input layers.

E = ‖X·w + b − y‖² / (2N) over a batch of N rows, w and b in an InnerProduct layer (params named
"weights" and "bias"; gaussian std 1 fillers). A ``Feeder`` serves consecutive batches of a fixed
8-row dataset before every forward, as Caffe's HDF5Data layer does, so ``iter_size`` passes see
different rows. With ``share=True`` the batch is sliced in two halves that go through two
InnerProduct layers sharing the params (by ParamSpec name) and are concatenated again.
"""

from __future__ import annotations

import numpy as np
import torch

import recaffe
from recaffe.io import prototxt
from recaffe.proto import caffe_pb2

NUM_ROWS = 8
ITEM_SHAPE = (3, 2, 2)
DIM = int(np.prod(ITEM_SHAPE))
SEED = 1701


def dataset() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    x = torch.randn((NUM_ROWS, *ITEM_SHAPE), generator=generator)
    y = torch.randn((NUM_ROWS, 1), generator=generator)
    return x, y


def _ip(name: str, bottom: str, top: str) -> str:
    return (f'layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" top: "{top}" '
            'param { name: "weights" } param { name: "bias" } inner_product_param { num_output: 1 '
            'weight_filler { type: "gaussian" std: 1.0 } bias_filler { type: "gaussian" std: 1.0 } } }\n')


def net_text(batch: int, share: bool = False) -> str:
    dims = " ".join(f"dim: {d}" for d in (batch, *ITEM_SHAPE))
    text = (f'name: "LeastSquares"\nlayer {{ name: "data" type: "Input" top: "data" top: "targets" '
            f'input_param {{ shape {{ {dims} }} shape {{ dim: {batch} dim: 1 }} }} }}\n')
    if share:
        text += ('layer { name: "slice" type: "Slice" bottom: "data" top: "data1" top: "data2" '
                 'slice_param { axis: 0 } }\n')
        text += _ip("innerprod", "data1", "innerprod1") + _ip("innerprod2", "data2", "innerprod2")
        text += ('layer { name: "concat" type: "Concat" bottom: "innerprod1" bottom: "innerprod2" '
                 'top: "innerprod" concat_param { axis: 0 } }\n')
    else:
        text += _ip("innerprod", "data", "innerprod")
    return text + ('layer { name: "loss" type: "EuclideanLoss" bottom: "innerprod" bottom: "targets" '
                   'top: "loss" }\n')


def solver_param(
    solver_type: str = "SGD",
    lr: float = 1.0,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    iter_size: int = 1,
    num: int = 4,
    share: bool = False,
    extra: str = "",
    policy: str = "fixed",
) -> caffe_pb2.SolverParameter:
    text = (f'type: "{solver_type}" base_lr: {lr} lr_policy: "{policy}" iter_size: {iter_size} '
            f"weight_decay: {weight_decay} momentum: {momentum} random_seed: {SEED} "
            f"snapshot_after_train: false {extra}")
    param = prototxt.parse_text(text, caffe_pb2.SolverParameter())
    param.net_param.CopyFrom(prototxt.parse_text(net_text(num // iter_size, share), caffe_pb2.NetParameter()))
    return param


class Feeder:
    """Fills the Input tops with the next batch of rows (cycling) before every forward pass."""

    def __init__(self, net: recaffe.Net, position: int = 0) -> None:
        self.net = net
        self.x, self.y = dataset()
        self.batch = net.blobs["data"].shape[0]
        self.position = position
        net.before_forward.append(self._before_forward)

    def rows(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.arange(position * self.batch, (position + 1) * self.batch) % NUM_ROWS
        return self.x[index], self.y[index]

    def _before_forward(self, layer_id: int) -> None:
        if layer_id == 0:
            x, y = self.rows(self.position)
            self.net.blobs["data"].data.copy_(x)
            self.net.blobs["targets"].data.copy_(y)
            self.position += 1


def make_solver(param: caffe_pb2.SolverParameter, position: int = 0) -> tuple[recaffe.Solver, Feeder]:
    solver = recaffe.load_solver(param)
    return solver, Feeder(solver.net, position)


def learnable(solver: recaffe.Solver) -> list[torch.Tensor]:
    return [p.blob.data.clone() for p in solver.net.learnable_params]


def history(solver: recaffe.Solver) -> list[torch.Tensor]:
    return [h.data.clone() for h in solver.history]
