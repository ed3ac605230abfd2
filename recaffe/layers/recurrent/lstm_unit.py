from __future__ import annotations

from collections.abc import Sequence
from typing import final

from recaffe.layer import Blobs, Layer
from recaffe.math import lstm
from recaffe.registry import LAYERS


@LAYERS.register("LSTMUnit")
@final
class LSTMUnitLayer(Layer):
    """One LSTM step on precomputed gate inputs: the cell of Caffe's unrolled LSTM.

    Forward: i, o = σ(x_i), σ(x_o);  f = cont·σ(x_f), exactly 0 where cont = 0;  g = tanh(x_g)
             c = f ⊙ c_prev + i ⊙ g;  h = o ⊙ tanh(c)
    Backward: with e = dc + dh ⊙ o ⊙ (1 − tanh²c):  dc_prev = e ⊙ f;
             dx = [e⊙g⊙i(1−i), e⊙c_prev⊙f(1−f), dh⊙tanh(c)⊙o(1−o), e⊙i⊙(1−g²)]
    NOTE: dx_f uses f(1 − f) with the cont-scaled f (Caffe's formula): exact for binary cont only.
    Params: none.
    Bottoms: c_prev (1, N, H), x (1, N, 4H) gate inputs [i, f, o, g], cont (1, N).
    Tops: c (1, N, H), h (1, N, H).
    In place: unsafe (c over c_prev: backward reads the overwritten c_prev), as in Caffe.
    """

    exact_num_bottom_blobs = 3
    exact_num_top_blobs = 2
    supports_in_place = True  # unsafe for backward, as in Caffe (see In place above)

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 2

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        n = bottom[0].shape[1] if bottom[0].num_axes > 1 else -1
        for i, (blob, name) in enumerate(zip(bottom, ("c_prev", "x", "cont"))):
            axes = 2 if i == 2 else 3
            if blob.num_axes != axes or blob.shape[0] != 1 or blob.shape[1] != n:
                shape = "(1, N, ...)" if i < 2 else "(1, N)"
                raise self.error(f"bottom[{i}] ({name}) must be {shape} with N = {n}, got {blob.shape}")
        if bottom[1].shape[2] != 4 * bottom[0].shape[2]:
            raise self.error(f"bottom[1] (x) must have 4 · H = {4 * bottom[0].shape[2]} gate inputs "
                             f"per stream, got {bottom[1].shape[2]}")
        top[0].reshape_like(bottom[0])
        top[1].reshape_like(bottom[0])

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        self.acts = lstm.lstm_gate_acts(bottom[1].data, bottom[2].data)  # Caffe's X_acts_
        c, h = lstm.lstm_unit_forward(self.acts, bottom[0].data)
        top[0].data.copy_(c)
        top[1].data.copy_(h)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if propagate_down[2]:
            raise self.error("cannot backpropagate to the sequence continuation indicators (bottom[2], cont)")
        if not (propagate_down[0] or propagate_down[1]):
            return
        dx, dc_prev = lstm.lstm_unit_backward(
            self.acts, bottom[0].data, top[0].data, top[0].diff, top[1].diff)
        if propagate_down[0]:
            bottom[0].diff.copy_(dc_prev)
        if propagate_down[1]:
            bottom[1].diff.copy_(dx)
