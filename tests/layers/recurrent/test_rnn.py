from __future__ import annotations

import torch

from tests.layers.recurrent.recurrent_case import H, RecurrentCase, input_transform, snippets, split_bottoms


class TestRNN(RecurrentCase):
    layer_type = "RNN"
    params = snippets()
    num_states = 1

    def reference(self, bottoms, blobs, param):
        x, cont, x_static, states = split_bottoms(bottoms, param)
        static = x_static is not None
        w_hh, w_ho, b_o = blobs[2 + static:]
        pre = input_transform(x, x_static, blobs, static)
        h = states[0][0] if states else torch.zeros(x.shape[1], H, dtype=x.dtype)
        outputs = []
        for t in range(x.shape[0]):
            h = torch.tanh(pre[t] + (cont[t, :, None] * h) @ w_hh.t())
            outputs.append(torch.tanh(h @ w_ho.t() + b_o))
        return (torch.stack(outputs), h[None]) if states else (torch.stack(outputs),)

    def test_seeded_fill_order(self) -> None:
        self.check_seeded_fill([(H, H), (H, H), (H,)], kept=3)  # W_hh, W_ho, b_o per timestep
