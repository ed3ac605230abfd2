"""recaffe's side of the training benchmark: a Caffe SGD solver stepping on synthetic batches."""

from __future__ import annotations

import torch

import recaffe
from recaffe.proto import caffe_pb2


class Trainer:
    """``step(data, label)``: copy the batch into the train net's Input blobs, then ``solver.step(1)``."""

    def __init__(self, solver: caffe_pb2.SolverParameter) -> None:
        param = caffe_pb2.SolverParameter()
        param.CopyFrom(solver)
        param.random_seed = 1701
        self.solver = recaffe.load_solver(param)
        self.net = self.solver.net
        self.data, self.label = (self.net.blob_list[i] for i in self.net.input_blob_indices)

    def step(self, data: torch.Tensor, label: torch.Tensor) -> float:
        self.data.data.copy_(data)
        self.label.data.copy_(label)
        self.solver.step(1)
        return self.solver.smoothed_loss

