from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs, Layer
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS

OP = caffe_pb2.ReductionParameter


@LAYERS.register("Reduction")
@final
class ReductionLayer(Layer):
    """Reduces all axes from ``axis`` on to one number per leading index, times ``coeff``.

    Forward, with x_i the D = count(axis:) entries of one output y:
        SUM y = c·Σx_i;  ASUM y = c·Σ|x_i|;  SUMSQ y = c·Σx_i²;  MEAN y = (c/D)·Σx_i.
    Backward: dx_i = dy·c (SUM), dy·c/D (MEAN), sign(x_i)·dy·c (ASUM; sign(0) = 0),
        2·dy·c·x_i (SUMSQ).
    Params (reduction_param): operation=SUM (SUM, ASUM, SUMSQ, MEAN), axis=0 (negative counts from
        the end; every axis after it is reduced too), coeff=1.
    Bottoms: x (d_0, ..., d_{n-1}).
    Tops: y (d_0, ..., d_{axis-1}); axis 0 gives a 0-axis (scalar) blob.
    In place: no (the shapes differ).
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        p, x = self.param.reduction_param, bottom[0]
        axis = x.canonical_axis(p.axis)
        top[0].reshape(x.shape[:axis])
        self.num, self.dim = x.count(0, axis), x.count(axis)
        coeff = torch.tensor(p.coeff, dtype=x.dtype)
        # NOTE: Caffe folds 1/D into the coefficient in the blob's precision, as done here.
        self.coeff = float(coeff / self.dim if p.operation == OP.MEAN else coeff)

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        op = self.param.reduction_param.operation
        x = bottom[0].data.view(self.num, self.dim)
        y = top[0].data.view(self.num)
        if op == OP.ASUM:
            x = x.abs()
        elif op == OP.SUMSQ:
            x = x * x
        torch.sum(x, dim=1, out=y)
        if self.coeff != 1:
            y.mul_(self.coeff)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        op = self.param.reduction_param.operation
        scale = top[0].diff.view(self.num, 1) * self.coeff  # (num, 1): dy·c per output
        x = bottom[0].data.view(self.num, self.dim)
        dx = bottom[0].diff.view(self.num, self.dim)
        if op == OP.ASUM:
            torch.mul(x.sign(), scale, out=dx)
        elif op == OP.SUMSQ:
            torch.mul(x, 2 * scale, out=dx)
        else:
            dx.copy_(scale.expand(self.num, self.dim))
