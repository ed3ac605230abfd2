from __future__ import annotations

from typing import final

import torch

from recaffe.layers.recurrent.base import RecurrentLayer, Specs
from recaffe.registry import LAYERS


@LAYERS.register("RNN")
@final
class RNNLayer(RecurrentLayer):
    """Elman recurrent network (see RecurrentLayer for state, shapes and gradient rules).

    Forward: h_t = tanh(W_hh·(cont_t·h_{t−1}) + W_xh·x_t + b_h [+ W_xh_static·x_static])
             o_t = tanh(W_ho·h_t + b_o)
    Backward: dz_o = do ⊙ (1 − o²) gives dW_ho, db_o and dh_t = W_hoᵀ·dz_o + cont_{t+1}·W_hhᵀ·dz_{t+1};
             dz_t = dh_t ⊙ (1 − h_t²) gives dW_xh, db_h, dW_xh_static, dW_hh, dx and dx_static.
    Params (recurrent_param): num_output H (required), weight_filler and bias_filler (default
        constant 0), debug_info (ignored), expose_hidden=false.
        Blobs: W_xh (H, I), b_h (H), [W_xh_static (H, S)], W_hh (H, H), W_ho (H, H), b_o (H).
    Bottoms: x (T, N, ...), cont (T, N), [x_static (N, ...)], [h_0 (1, N, H) if expose_hidden].
    Tops: o (T, N, H), [h_T (1, N, H) if expose_hidden].
    In place: no.
    """

    num_states = 1
    gates_per_output = 1

    def recurrent_specs(self) -> Specs:
        p, h = self.param.recurrent_param, self.hidden
        return [((h, h), p.weight_filler), ((h, h), p.weight_filler), ((h,), p.bias_filler)]

    def step(self, t: int, gates: torch.Tensor, cont: torch.Tensor) -> torch.Tensor:
        return torch.tanh(gates)

    def final_states(self) -> list[torch.Tensor]:
        return [self.h[-1]]

    def write_output(self, out: torch.Tensor) -> None:
        w_ho, b_o = self.blobs[-2].data, self.blobs[-1].data
        hidden = self.h[1:].reshape(-1, self.hidden)  # (T·N, H)
        self.o = torch.addmm(b_o, hidden, w_ho.t()).tanh_().view(out.shape)
        out.copy_(self.o)

    def output_backward(self, diff: torch.Tensor) -> torch.Tensor:
        dz = (diff * (1 - self.o * self.o)).view(-1, self.hidden)  # (T·N, H)
        if self.param_propagate_down[-2]:
            self.blobs[-2].diff.addmm_(dz.t(), self.h[1:].reshape(-1, self.hidden))
        if self.param_propagate_down[-1]:
            self.blobs[-1].diff.add_(dz.sum(0))
        return (dz @ self.blobs[-2].data).view(diff.shape)

    def step_backward(self, t: int, dh: torch.Tensor) -> torch.Tensor:
        h = self.h[t + 1]
        return dh * (1 - h * h)
