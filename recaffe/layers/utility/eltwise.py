from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs, Layer
from recaffe.math.pooling import FLT_MAX
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS

Op = caffe_pb2.EltwiseParameter


@LAYERS.register("Eltwise")
@final
class EltwiseLayer(Layer):
    """Element-wise product, weighted sum or maximum of several equally shaped bottoms.

    Forward: PROD y = Π_i x_i ;  SUM y = Σ_i c_i x_i ;  MAX y = max_i x_i.
    Backward: PROD dx_i = dy ⊙ Π_{j≠i} x_j (stable_prod_grad) or dy ⊙ y / x_i ;
        SUM dx_i = c_i dy ;  MAX dx_i = dy where bottom i is the argmax, else 0.
    NOTE: MAX ties go to the later bottom between bottoms 0 and 1 (x0 > x1 ? 0 : 1), but a later
        bottom must be strictly greater to win; NaN comparisons are false, as in Caffe.
    Params (eltwise_param): operation=SUM (PROD, SUM, MAX), coeff (none, or one per bottom; PROD
        rejects them, MAX ignores them), stable_prod_grad=true.
    Bottoms: x_1 ... x_K (K >= 2), all of one shape.
    Tops: y, shaped like the bottoms.
    In place: unsafe, as in Caffe: the bottom that is also the top gets overwritten step by step
        (SUM and MAX start by clearing the top), and backward reads it.
    """

    min_bottom_blobs = 2
    exact_num_top_blobs = 1
    supports_in_place = True  # Caffe runs it; unsafe, as in Caffe (see In place above)

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.eltwise_param
        if len(p.coeff) not in (0, len(bottom)):
            raise self.error(f"eltwise_param.coeff takes one coefficient per bottom blob "
                             f"({len(bottom)} bottoms), got {len(p.coeff)}")
        if p.operation == Op.PROD and p.coeff:
            raise self.error("eltwise_param.coeff is only allowed for SUM, got operation PROD")
        self.coeffs = list(p.coeff) or [1.0] * len(bottom)

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        for i, blob in enumerate(bottom[1:], start=1):
            if blob.shape != bottom[0].shape:
                raise self.error(f"all bottoms must have one shape: bottom[0] is "
                                 f"{bottom[0].shape_string()}, bottom[{i}] is {blob.shape_string()}")
        top[0].reshape_like(bottom[0])

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        op, y = self.param.eltwise_param.operation, top[0].data
        if op == Op.PROD:
            torch.mul(bottom[0].data, bottom[1].data, out=y)
            for blob in bottom[2:]:
                y.mul_(blob.data)
        elif op == Op.SUM:
            y.zero_()
            for coeff, blob in zip(self.coeffs, bottom):
                y.add_(blob.data, alpha=coeff)
        else:
            self._forward_max(bottom, top)

    def _forward_max(self, bottom: Blobs, top: Blobs) -> None:
        y = top[0].data
        if any(blob is top[0] for blob in bottom):
            y.fill_(-FLT_MAX)  # Caffe's initialisation, visible only when the top is a bottom
        a, b = bottom[0].data, bottom[1].data
        first = a > b
        self.mask = (~first).to(torch.uint8 if len(bottom) < 256 else torch.int32)  # argmax index
        torch.where(first, a, b, out=y)
        for i, blob in enumerate(bottom[2:], start=2):
            wins = blob.data > y
            self.mask.masked_fill_(wins, i)
            torch.where(wins, blob.data, y, out=y)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        p = self.param.eltwise_param
        dy, y = top[0].diff, top[0].data
        for i, blob in enumerate(bottom):
            if not propagate_down[i]:
                continue
            dx = blob.diff
            if p.operation == Op.PROD:
                self._prod_grad(bottom, i, y, dx)
                dx.mul_(dy)
            elif p.operation == Op.SUM:
                torch.mul(dy, self.coeffs[i], out=dx)
            else:
                torch.where(self.mask == i, dy, torch.zeros((), dtype=dy.dtype, device=dy.device), out=dx)

    def _prod_grad(self, bottom: Blobs, i: int, y: torch.Tensor, dx: torch.Tensor) -> None:
        """dx ← the product of the other bottoms (stable), or y / x_i."""
        if not self.param.eltwise_param.stable_prod_grad:
            torch.div(y, bottom[i].data, out=dx)
            return
        others = [blob for j, blob in enumerate(bottom) if j != i]
        dx.copy_(others[0].data)
        for blob in others[1:]:
            dx.mul_(blob.data)
