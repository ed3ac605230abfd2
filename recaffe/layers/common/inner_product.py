from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import final

import torch

from recaffe.layer import Blobs, Layer
from recaffe.math import pieces
from recaffe.registry import LAYERS
from recaffe.workers import SERIAL, Workers

# From about this many weights on, oneDNN's inner product beats MKL's GEMM for a small batch on the
# CPU (2.8x for CaffeNet's fc6 at batch 10; both read the weights once, MKL's skinny GEMM slowly).
ONEDNN_MIN_WEIGHTS = 1 << 20
# oneDNN's fused linear is a private torch op (torch.ops.mkldnn._linear_pointwise, in the torch
# versions recaffe is tested on): looked up and tried once; the GEMM path serves where it is
# missing or does not work.
ONEDNN_LINEAR = "_linear_pointwise"


@functools.cache
def onednn_linear() -> Callable[..., torch.Tensor] | None:
    """oneDNN's linear(x, w, bias, "none", [], ""), or None where this torch lacks a working one."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        op = getattr(torch.ops.mkldnn, ONEDNN_LINEAR)
        x, w = torch.arange(6.0).view(2, 3), torch.arange(12.0).view(4, 3)
        works = torch.equal(op(x, w, None, "none", [], ""), x @ w.t())
    except (AttributeError, RuntimeError, TypeError):
        return None
    return op if works else None


def onednn_for(x: torch.Tensor, weight: torch.Tensor) -> Callable[..., torch.Tensor] | None:
    """``linear(x, w, bias)`` by oneDNN where it beats the GEMM for ``x · weightᵀ``, else None."""
    op = onednn_linear()
    if (op is None or x.device.type != "cpu" or weight.numel() < ONEDNN_MIN_WEIGHTS
            or not weight.is_contiguous() or x.dtype != torch.float32):
        return None
    return lambda x, w, bias: op(x, w, bias, "none", [], "")


@LAYERS.register("InnerProduct")
@final
class InnerProductLayer(Layer):
    """Fully connected layer: top = bottom · Wᵀ + b.

    Backward: dW += top.diffᵀ · x ;  db += Σ_rows top.diff ;  bottom.diff = top.diff · W
    Params (inner_product_param): num_output, bias_term=true, weight_filler and bias_filler
        (default constant 0), axis=1, transpose=false (W stored as (K, N) instead of (N, K)).
    Bottoms: x with the axes from ``axis`` on flattened to K; M = the product of the others.
    Tops: shape[:axis] + (num_output,).
    In place: no.
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1
    shares_work = True

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.inner_product_param
        if p.num_output <= 0:
            raise self.error(f"inner_product_param.num_output must be > 0, got {p.num_output}")
        self.axis = bottom[0].canonical_axis(p.axis)
        self.k = bottom[0].count(self.axis)
        n = p.num_output
        if not self.blobs:
            self.blobs = [self.new_blob((self.k, n) if p.transpose else (n, self.k), p.weight_filler)]
            if p.bias_term:
                self.blobs.append(self.new_blob((n,), p.bias_filler))
        expected = (self.k, n) if p.transpose else (n, self.k)
        if self.blobs[0].shape != expected:
            raise self.error(f"weight blob has shape {self.blobs[0].shape}, expected {expected}")
        self.param_propagate_down = [True] * len(self.blobs)

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        axis = bottom[0].canonical_axis(self.param.inner_product_param.axis)
        if bottom[0].count(axis) != self.k:
            raise self.error(
                f"input size {bottom[0].count(axis)} (shape {bottom[0].shape} from axis {axis}) "
                f"does not match the weights' {self.k}"
            )
        self.m = bottom[0].count(0, axis)
        top[0].reshape((*bottom[0].shape[:axis], self.param.inner_product_param.num_output))

    def weight_rows(self) -> torch.Tensor:
        """W as (N, K) whatever its storage."""
        w = self.blobs[0].data
        return w.t() if self.param.inner_product_param.transpose else w

    def forward(self, bottom: Blobs, top: Blobs, workers: Workers = SERIAL,
                slope: float | None = None, matvec: pieces.MatVec | None = None) -> None:
        """(Deploy mode's: ``slope``, a ReLU of that negative slope after it, its fused step;
        ``matvec``, its kernel for one row of input.)"""
        x = bottom[0].data.reshape(self.m, self.k)  # (M, K)
        w, bias = self.weight_rows(), self.blobs[1].data if len(self.blobs) > 1 else None
        pieces.inner_product(workers, x, w, bias, top[0].data.view(self.m, -1), onednn_for(x, w), slope,
                             matvec)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        dy = top[0].diff.reshape(self.m, -1)  # (M, N)
        if self.param_propagate_down[0]:
            x = bottom[0].data.reshape(self.m, self.k)  # (M, K)
            dw = self.blobs[0].diff
            if self.param.inner_product_param.transpose:
                dw.addmm_(x.t(), dy)  # (K, N)
            else:
                dw.addmm_(dy.t(), x)  # (N, K)
        if len(self.blobs) > 1 and self.param_propagate_down[1]:
            self.blobs[1].diff.add_(dy.sum(0))
        if propagate_down[0]:
            torch.matmul(dy, self.weight_rows(), out=bottom[0].diff.view(self.m, self.k))
