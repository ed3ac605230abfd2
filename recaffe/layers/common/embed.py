from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe.layer import Blobs, Layer
from recaffe.registry import LAYERS


@LAYERS.register("Embed")
@final
class EmbedLayer(Layer):
    """Looks up a learned vector per integer index: y[..., :] = W[x[...], :] + b.

    Backward: dW[k] += Σ_{positions with x = k} dy ;  db += Σ_positions dy. No gradient to x.
    Params (embed_param): num_output N, input_dim K (both > 0), bias_term=true, weight_filler and
        bias_filler (default constant 0).
    Blobs: W (K, N) (transposed relative to InnerProduct), b (N,).
    Bottoms: x (any shape) holding integers in [0, K).
    Tops: y, shape x.shape + (N,).
    In place: no (the shapes differ).
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.embed_param
        if p.num_output <= 0:
            raise self.error(f"embed_param.num_output must be > 0, got {p.num_output}")
        if p.input_dim <= 0:
            raise self.error(f"embed_param.input_dim must be > 0, got {p.input_dim}")
        if not self.blobs:
            self.blobs = [self.new_blob((p.input_dim, p.num_output), p.weight_filler)]
            if p.bias_term:
                self.blobs.append(self.new_blob((p.num_output,), p.bias_filler))
        if self.blobs[0].shape != (p.input_dim, p.num_output):
            raise self.error(f"weight blob has shape {self.blobs[0].shape}, "
                             f"expected {(p.input_dim, p.num_output)}")
        self.param_propagate_down = [True] * len(self.blobs)

    def allow_force_backward(self, bottom_index: int) -> bool:
        return False

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        top[0].reshape((*bottom[0].shape, self.param.embed_param.num_output))

    def _indices(self, bottom: Blobs) -> torch.Tensor:
        """x as a flat int64 tensor, checked to hold integers in [0, input_dim)."""
        x = bottom[0].data.reshape(-1)
        index = x.long()
        bad = (index != x) | (index < 0) | (index >= self.param.embed_param.input_dim)
        if bool(bad.any()):
            value = float(x[bad.nonzero()[0, 0]])
            raise self.error(f"input {value} is not an integer index in "
                             f"[0, {self.param.embed_param.input_dim})")
        return index

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        self.index = self._indices(bottom)
        y = top[0].data.view(self.index.numel(), -1)  # (M, N)
        torch.index_select(self.blobs[0].data, 0, self.index, out=y)
        if self.param.embed_param.bias_term:
            y.add_(self.blobs[1].data)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if propagate_down[0]:
            raise self.error("cannot backpropagate to the input indices; set propagate_down: false")
        dy = top[0].diff.view(-1, self.param.embed_param.num_output)  # (M, N)
        if self.param_propagate_down[0]:
            self.blobs[0].diff.index_add_(0, self.index, dy)  # the indices checked in forward
        if self.param.embed_param.bias_term and self.param_propagate_down[1]:
            self.blobs[1].diff.add_(dy.sum(dim=0))
