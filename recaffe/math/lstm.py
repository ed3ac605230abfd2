"""Caffe's LSTM cell (``lstm_unit_layer.cpp``), shared by the LSTMUnit and LSTM layers.

Gate pre-activations come as ``[i, f, o, g]`` blocks of H along the last axis. The forget gate is
``f = cont · σ(f')``, and exactly 0 where ``cont == 0``. Its backward uses ``f (1 − f)`` with the
cont-scaled ``f`` (Caffe's formula), which is the true derivative only for binary ``cont``.
"""

from __future__ import annotations

import torch


def lstm_gate_acts(gates: torch.Tensor, cont: torch.Tensor) -> torch.Tensor:
    """Activated gates ``[σ(i'), f, σ(o'), tanh(g')]`` from ``gates (..., 4H)`` and ``cont (...)``."""
    hidden = gates.shape[-1] // 4
    acts = torch.cat([torch.sigmoid(gates[..., : 3 * hidden]), torch.tanh(gates[..., 3 * hidden :])], -1)
    f = acts[..., hidden : 2 * hidden]
    cont = cont.unsqueeze(-1)
    torch.where(cont == 0, torch.zeros((), dtype=f.dtype, device=f.device), cont * f, out=f)
    return acts


def lstm_unit_forward(acts: torch.Tensor, c_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``c = f ⊙ c_prev + i ⊙ g`` and ``h = o ⊙ tanh(c)``."""
    i, f, o, g = acts.chunk(4, -1)
    c = f * c_prev + i * g
    return c, o * torch.tanh(c)


def lstm_unit_backward(
    acts: torch.Tensor, c_prev: torch.Tensor, c: torch.Tensor, dc: torch.Tensor, dh: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients ``(d gates (..., 4H), d c_prev)`` given the diffs ``dc`` and ``dh`` of c and h."""
    i, f, o, g = acts.chunk(4, -1)
    tanh_c = torch.tanh(c)
    c_term = dc + dh * o * (1 - tanh_c * tanh_c)
    dgates = torch.cat([
        c_term * g * i * (1 - i),
        c_term * c_prev * f * (1 - f),
        dh * tanh_c * o * (1 - o),
        c_term * i * (1 - g * g),
    ], -1)
    return dgates, c_term * f
