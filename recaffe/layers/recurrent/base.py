"""RecurrentLayer: set-up, shape checks and the time loop shared by the RNN and LSTM layers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch

from recaffe import fillers, rng
from recaffe.blob import Blob
from recaffe.layer import Blobs, Layer
from recaffe.proto import caffe_pb2

Specs = Sequence[tuple[tuple[int, ...], caffe_pb2.FillerParameter]]


class RecurrentLayer(Layer):
    """A recurrence over T timesteps of N independent streams (Caffe's abstract RecurrentLayer).

    Caffe runs an unrolled internal Net; this runs the same arithmetic as a loop over time with an
    explicit backward through time. Per step: ``gates_t = W_x·x_t + b [+ W_static·x_static]
    + W_h·(cont_t · h_{t−1})``, then the subclass' cell. Observable behaviour follows Caffe:

    * Stateful: without ``expose_hidden`` the final states of one forward are the initial states of
      the next (zeros at first). They live in (1, N, H) blobs that follow the Blob capacity rule
      when N changes, as Caffe's internal blobs do: a smaller N keeps the first streams' states, a
      larger N than ever before starts from zeros.
    * No backpropagation across batches: exposed initial states get no gradient (their diffs are
      left untouched, as in Caffe), the diffs of the exposed final-state tops are ignored, and
      backward to ``cont`` is an error.
    * Parameters are drawn in the order the unrolled net creates them: W_x, b, [W_static], then
      each timestep's copy of the recurrent weights (``recurrent_specs``), keeping only the first
      copy, so a seeded net consumes Caffe's random stream exactly. Weights embedded in the
      LayerParameter then replace the drawn ones (Caffe would silently discard them).

    Bottoms: x (T, N, ...) flattened from axis 2 to I; cont (T, N); [x_static (N, ...)]; then, with
    ``expose_hidden``, the initial states (1, N, H). Tops: (T, N, H); then, with ``expose_hidden``,
    the final states (1, N, H).
    """

    min_bottom_blobs = 2
    min_top_blobs = 1
    num_states: ClassVar[int] = 1  # recurrent state blobs: h (RNN); h and c (LSTM)
    gates_per_output: ClassVar[int] = 1  # rows of W_x per hidden unit (4 for the LSTM's gates)

    # ------------------------------------------------------------ subclass hooks
    def recurrent_specs(self) -> Specs:
        """(shape, filler) of the per-timestep params, W_h first, in the unrolled net's order."""
        raise NotImplementedError

    def start(self, initial: list[torch.Tensor]) -> None:
        """Prepare the forward caches from the initial states (N, H) each."""

    def step(self, t: int, gates: torch.Tensor, cont: torch.Tensor) -> torch.Tensor:
        """Run the cell at timestep t on gates (N, G); return h_t (N, H)."""
        raise NotImplementedError

    def final_states(self) -> list[torch.Tensor]:
        raise NotImplementedError

    def write_output(self, out: torch.Tensor) -> None:
        """Write the (T, N, H) top from the hidden states ``self.h[1:]``."""
        raise NotImplementedError

    def output_backward(self, diff: torch.Tensor) -> torch.Tensor:
        """Accumulate output-layer param diffs; return the diff of the hidden states (T, N, H)."""
        raise NotImplementedError

    def step_backward(self, t: int, dh: torch.Tensor) -> torch.Tensor:
        """Diff of gates_t (N, G) given the total diff of h_t; steps run from T−1 down to 0."""
        raise NotImplementedError

    # --------------------------------------------------------------------- layer
    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 1

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.recurrent_param
        if p.num_output == 0:
            raise self.error("recurrent_param.num_output must be positive, got 0")
        self.hidden = p.num_output
        exposed = self.num_states if p.expose_hidden else 0
        if not 2 + exposed <= len(bottom) <= 3 + exposed or len(top) != 1 + exposed:
            raise self.error(
                f"with expose_hidden={p.expose_hidden} takes {2 + exposed} or {3 + exposed} bottoms "
                f"(x, cont, [x_static]{', initial states' * bool(exposed)}) and produces "
                f"{1 + exposed} top(s), got {len(bottom)} bottoms and {len(top)} tops"
            )
        self.expose, self.static = bool(exposed), len(bottom) > 2 + exposed
        self.first_state = self.w_h_index = 2 + self.static  # bottom index of h_0; blob index of W_h
        self.check_x(bottom[0])
        self.T, self.x_dim = bottom[0].shape[0], bottom[0].count(2)
        self.static_dim = bottom[2].count(1) if self.static else 0
        width = self.gates_per_output * self.hidden
        inputs: list[tuple[tuple[int, ...], caffe_pb2.FillerParameter]] = [
            ((width, self.x_dim), p.weight_filler), ((width,), p.bias_filler)]
        if self.static:
            inputs.append(((width, self.static_dim), p.weight_filler))
        drawn = self.draw(inputs, 1) + self.draw(self.recurrent_specs(), self.T)
        self.blobs = self.blobs or drawn
        for j, (mine, want) in enumerate(zip(self.blobs, drawn)):
            if mine.shape != want.shape:
                raise self.error(f"parameter blob {j} has shape {mine.shape}, expected {want.shape}")
        if len(self.blobs) != len(drawn):
            raise self.error(f"expected {len(drawn)} parameter blobs, got {len(self.blobs)}")
        self.param_propagate_down = [True] * len(self.blobs)
        self.state = [self.new_blob((1, bottom[0].shape[1], self.hidden)) for _ in range(self.num_states)]

    def draw(self, specs: Specs, copies: int) -> list[Blob]:
        """Fill ``copies`` blobs per spec, timestep by timestep; return the first timestep's."""
        kept = [self.new_blob(shape, filler) for shape, filler in specs]
        for _ in range(copies - 1):
            for blob, (_, filler) in zip(kept, specs):
                fillers.fill(Blob(blob.shape, dtype=self.dtype), filler, rng.get_rng())
        return kept

    def check_x(self, x: Blob) -> None:
        if x.num_axes < 3:
            raise self.error(f"bottom[0] (x) must have at least 3 axes (T, N, ...): its inner "
                             f"product runs over axis 2; got shape {x.shape}")

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        x, cont = bottom[0], bottom[1]
        self.check_x(x)
        if x.shape[0] != self.T:
            raise self.error(f"input number of timesteps changed: got {x.shape[0]}, the layer was "
                             f"set up for T = {self.T} (T is fixed; N may change)")
        self.N = n = x.shape[1]
        if cont.shape != (self.T, n):
            raise self.error(f"bottom[1] (cont) must have shape (T, N) = {(self.T, n)}, got {cont.shape}")
        if x.count(2) != self.x_dim:
            raise self.error(f"input size {x.count(2)} (shape {x.shape} from axis 2) does not match "
                             f"the weights' {self.x_dim}")
        if self.static and (bottom[2].num_axes < 1 or bottom[2].shape[0] != n
                            or bottom[2].count(1) != self.static_dim):
            raise self.error(f"bottom[2] (x_static) must be (N = {n}, ...) with {self.static_dim} "
                             f"values per stream, got shape {bottom[2].shape}")
        state_shape = (1, n, self.hidden)
        for blob in bottom[self.first_state:]:
            if blob.shape != state_shape:
                raise self.error(f"initial state bottoms must have shape {state_shape}, got {blob.shape}")
        top[0].reshape((self.T, n, self.hidden))
        for blob in [*top[1:], *self.state]:
            blob.reshape(state_shape)

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        t_steps, n = self.T, self.N
        w_x, b, w_h = self.blobs[0].data, self.blobs[1].data, self.blobs[self.w_h_index].data
        x = bottom[0].data.reshape(t_steps * n, self.x_dim)
        pre = torch.addmm(b, x, w_x.t()).view(t_steps, n, -1)  # (T, N, G)
        if self.static:
            pre += bottom[2].data.reshape(n, self.static_dim) @ self.blobs[2].data.t()  # (N, G)
        sources = bottom[self.first_state:] if self.expose else self.state
        initial = [blob.data[0] for blob in sources]
        self.cont = bottom[1].data.clone()
        self.h = torch.empty(t_steps + 1, n, self.hidden, dtype=pre.dtype, device=pre.device)
        self.h[0] = initial[0]
        self.h_conted = torch.empty_like(self.h[1:])  # (T, N, H)
        self.start(initial)
        for t in range(t_steps):
            torch.mul(self.h[t], self.cont[t, :, None], out=self.h_conted[t])
            self.h[t + 1] = self.step(t, torch.addmm(pre[t], self.h_conted[t], w_h.t()), self.cont[t])
        self.write_output(top[0].data)
        for k, final in enumerate(self.final_states()):
            self.state[k].data[0].copy_(final)
            if self.expose:
                top[1 + k].data[0].copy_(final)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if propagate_down[1]:
            raise self.error("cannot backpropagate to the sequence continuation indicators (bottom[1], cont)")
        down_x, down_static = propagate_down[0], self.static and propagate_down[2]
        if not (down_x or down_static or any(self.param_propagate_down)):
            return
        w_h = self.blobs[self.w_h_index].data
        dh_out = self.output_backward(top[0].diff)  # (T, N, H)
        dgates = torch.empty(self.T, self.N, w_h.shape[0], dtype=w_h.dtype, device=w_h.device)
        dh = dh_out[-1]
        for t in reversed(range(self.T)):
            dgates[t] = self.step_backward(t, dh)
            if t > 0:  # the diff of h_0 goes nowhere: no BPTT across batches
                dh = dh_out[t - 1] + (dgates[t] @ w_h) * self.cont[t, :, None]
        self.input_backward(dgates, bottom, down_x, down_static)

    def input_backward(self, dgates: torch.Tensor, bottom: Blobs, down_x: bool, down_static: bool) -> None:
        """Param and bottom diffs of the input and recurrent transforms from the gates' diff."""
        rows = self.T * self.N
        flat = dgates.view(rows, -1)  # (T·N, G)
        x = bottom[0].data.reshape(rows, self.x_dim)
        if self.param_propagate_down[0]:
            self.blobs[0].diff.addmm_(flat.t(), x)
        if self.param_propagate_down[1]:
            self.blobs[1].diff.add_(flat.sum(0))
        if self.static and (self.param_propagate_down[2] or down_static):
            summed = dgates.sum(0)  # (N, G)
            if self.param_propagate_down[2]:
                self.blobs[2].diff.addmm_(summed.t(), bottom[2].data.reshape(self.N, self.static_dim))
            if down_static:
                torch.matmul(summed, self.blobs[2].data, out=bottom[2].diff.view(self.N, self.static_dim))
        if self.param_propagate_down[self.w_h_index]:
            self.blobs[self.w_h_index].diff.addmm_(flat.t(), self.h_conted.view(rows, self.hidden))
        if down_x:
            torch.matmul(flat, self.blobs[0].data, out=bottom[0].diff.view(rows, self.x_dim))
