from __future__ import annotations

import torch

from tests.layers.recurrent.recurrent_case import H, RecurrentCase, input_transform, snippets, split_bottoms


class TestLSTM(RecurrentCase):
    layer_type = "LSTM"
    params = snippets()
    num_states = 2

    def reference(self, bottoms, blobs, param):
        x, cont, x_static, states = split_bottoms(bottoms, param)
        static = x_static is not None
        w_hc = blobs[2 + static]
        pre = input_transform(x, x_static, blobs, static)
        zeros = torch.zeros(x.shape[1], H, dtype=x.dtype)
        h, c = (states[0][0], states[1][0]) if states else (zeros, zeros)
        outputs = []
        for t in range(x.shape[0]):
            keep = cont[t, :, None]
            i, f, o, g = (pre[t] + (keep * h) @ w_hc.t()).chunk(4, -1)
            c = keep * torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        return (torch.stack(outputs), h[None], c[None]) if states else (torch.stack(outputs),)

    def test_seeded_fill_order(self) -> None:
        self.check_seeded_fill([(4 * H, H)], kept=1)  # W_hc per timestep
