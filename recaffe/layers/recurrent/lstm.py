from __future__ import annotations

from typing import final

import torch

from recaffe.layers.recurrent.base import RecurrentLayer, Specs
from recaffe.math import lstm
from recaffe.registry import LAYERS


@LAYERS.register("LSTM")
@final
class LSTMLayer(RecurrentLayer):
    """Long short-term memory (see RecurrentLayer for state, shapes and gradient rules).

    Forward: [i', f', o', g'] = W_hc·(cont_t·h_{t−1}) + W_xc·x_t + b_c [+ W_xc_static·x_static];
             i, o = σ(i'), σ(o');  f = cont_t·σ(f') (0 where cont_t = 0);  g = tanh(g')
             c_t = f ⊙ c_{t−1} + i ⊙ g;  h_t = o ⊙ tanh(c_t)
    Backward: LSTMUnit's backward per step, from t = T−1 down, with dh_{t−1} += cont_t·W_hcᵀ·dgates_t
             and dc_{t−1} = f ⊙ (dc_t + dh_t ⊙ o ⊙ (1 − tanh²c_t)); then the transforms' diffs.
    Params (recurrent_param): num_output H (required), weight_filler and bias_filler (default
        constant 0), debug_info (ignored), expose_hidden=false.
        Blobs: W_xc (4H, I), b_c (4H), [W_xc_static (4H, S)], W_hc (4H, H).
    Bottoms: x (T, N, ...), cont (T, N), [x_static (N, ...)], [h_0, c_0 (1, N, H) if expose_hidden].
    Tops: h (T, N, H), [h_T, c_T (1, N, H) if expose_hidden].
    In place: no.
    """

    num_states = 2
    dc: torch.Tensor  # c_t's diff, carried from step t to step t - 1 in backward
    gates_per_output = 4

    def recurrent_specs(self) -> Specs:
        return [((4 * self.hidden, self.hidden), self.param.recurrent_param.weight_filler)]

    def start(self, initial: list[torch.Tensor]) -> None:
        self.c = torch.empty_like(self.h)  # (T + 1, N, H)
        self.c[0] = initial[1]
        self.acts = torch.empty(self.T, self.N, 4 * self.hidden, dtype=self.h.dtype, device=self.h.device)

    def step(self, t: int, gates: torch.Tensor, cont: torch.Tensor) -> torch.Tensor:
        self.acts[t] = lstm.lstm_gate_acts(gates, cont)
        self.c[t + 1], h = lstm.lstm_unit_forward(self.acts[t], self.c[t])
        return h

    def final_states(self) -> list[torch.Tensor]:
        return [self.h[-1], self.c[-1]]

    def write_output(self, out: torch.Tensor) -> None:
        out.copy_(self.h[1:])

    def output_backward(self, diff: torch.Tensor) -> torch.Tensor:
        return diff

    def step_backward(self, t: int, dh: torch.Tensor) -> torch.Tensor:
        dc = torch.zeros_like(dh) if t == self.T - 1 else self.dc  # c_T's diff is held at 0
        dgates, self.dc = lstm.lstm_unit_backward(self.acts[t], self.c[t], self.c[t + 1], dc, dh)
        return dgates
