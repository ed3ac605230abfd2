"""RecurrentCase: the LayerCase base and behaviour tests shared by the RNN and LSTM tests.

A snippet names its bottoms (``bottom: "x_static"`` adds the static input); ``make_bottoms``
builds x (T, N, 3, 2), a binary cont and the optional bottoms. Without ``expose_hidden`` cont is 0
at t = 0, so the layer's carried state cannot change the result between the gradient checker's
forwards (Caffe's own tests do the same).
"""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch

from recaffe import rng
from recaffe.blob import Blob
from recaffe.layer import Layer, LayerError
from recaffe.registry import LAYERS
from recaffe.testing.layer_case import LayerCase

T, N, H = 3, 2, 3
FILLERS = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'
STATIC = 'bottom: "x" bottom: "cont" bottom: "x_static"'


def snippets(extra: str = "") -> list[str]:
    """The four bottom layouts: plain, static input, exposed states, both."""
    body = f"num_output: {H} {FILLERS} {extra}"
    expose = f"recurrent_param {{ {body} expose_hidden: true }}"
    return [f"recurrent_param {{ {body} }}", f"{STATIC} recurrent_param {{ {body} }}", expose,
            f"{STATIC} {expose}"]


def split_bottoms(bottoms, param):
    """(x, cont, x_static or None, initial states or None) from the bottoms of ``param``."""
    static = "x_static" in param.bottom
    x, cont, rest = bottoms[0], bottoms[1], list(bottoms[2:])
    x_static = rest.pop(0) if static else None
    return x, cont, x_static, (rest or None)


def input_transform(x, x_static, blobs, static: bool):
    """W_x·x_t + b [+ W_static·x_static] for every timestep: (T, N, G)."""
    pre = x.reshape(x.shape[0], x.shape[1], -1) @ blobs[0].t() + blobs[1]
    if static:
        pre = pre + x_static.reshape(x.shape[1], -1) @ blobs[2].t()
    return pre


class RecurrentCase(LayerCase):
    num_states: ClassVar[int] = 1
    check_tops = (0,)  # Caffe ignores the diffs of the exposed final states

    def make_bottoms(self, param, generator):
        first = [1.0, 0.0] if param.recurrent_param.expose_hidden else [0.0, 0.0]
        bottoms = [torch.randn(T, N, 3, 2, generator=generator, dtype=torch.float64),
                   torch.tensor([first, [1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)]
        if "x_static" in param.bottom:
            bottoms.append(torch.randn(N, 2, 2, generator=generator, dtype=torch.float64))
        if param.recurrent_param.expose_hidden:
            bottoms += [torch.randn(1, N, H, generator=generator, dtype=torch.float64)
                        for _ in range(self.num_states)]
        return bottoms

    def top_count(self, param):
        return 1 + self.num_states * param.recurrent_param.expose_hidden

    def checked_bottoms(self, layer, bottom):
        return [0, 2] if layer.static else [0]  # no gradient to cont or to the initial states

    # ------------------------------------------------------------- behaviour tests
    def make(self, snippet: str, x_shape: tuple[int, ...], n_bottoms: int = 2) -> tuple[Layer, list[Blob]]:
        rng.set_random_seed(3)
        param = self.layer_param(snippet)
        bottom = [Blob(x_shape, dtype=torch.float64), Blob(x_shape[:2], dtype=torch.float64)]
        bottom += [Blob((1, x_shape[1], H), dtype=torch.float64) for _ in range(n_bottoms - 2)]
        layer = LAYERS.get(self.layer_type)(param, dtype=torch.float64)
        layer.setup(bottom, [Blob(dtype=torch.float64) for _ in range(1 + (n_bottoms > 2) * self.num_states)])
        return layer, bottom

    @staticmethod
    def run(layer: Layer, bottom: list[Blob], x: torch.Tensor, cont: torch.Tensor) -> list[Blob]:
        for blob, values in zip(bottom, (x, cont)):
            blob.reshape(values.shape)
            blob.data.copy_(values)
        top = [Blob(dtype=torch.float64) for _ in range(1 + (len(bottom) > 2) * layer.num_states)]
        layer.run_forward(bottom, top)
        return top

    def test_state_carries_across_forwards(self) -> None:
        x = torch.randn(4, N, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        cont = torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
        whole, whole_bottom = self.make(snippets()[0], (4, N, 2))
        expected = self.run(whole, whole_bottom, x, cont)[0].data.clone()
        halves, bottom = self.make(snippets()[0], (2, N, 2))
        for mine, theirs in zip(halves.blobs, whole.blobs):  # same seed, same draw order
            assert torch.equal(mine.data, theirs.data)
        first = self.run(halves, bottom, x[:2], cont[:2])[0].data.clone()
        second = self.run(halves, bottom, x[2:], cont[2:])[0].data.clone()
        torch.testing.assert_close(torch.cat([first, second]), expected)
        restarted = self.run(halves, bottom, x[2:], torch.zeros(2, N, dtype=torch.float64))[0].data
        assert not torch.allclose(restarted[1], second[1])  # a zero cont forgets the carried state

    def test_stream_count_may_change(self) -> None:
        x = torch.randn(2, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        ones = torch.ones(2, 3, dtype=torch.float64)
        layer, bottom = self.make(snippets()[0], (2, 3, 2))
        self.run(layer, bottom, x, ones)
        carried = self.run(layer, bottom, x, ones)[0].data.clone()
        layer2, bottom2 = self.make(snippets()[0], (2, 3, 2))
        self.run(layer2, bottom2, x, ones)
        fewer = self.run(layer2, bottom2, x[:, :2], ones[:, :2])[0].data  # keeps streams 0 and 1
        torch.testing.assert_close(fewer, carried[:, :2])
        fresh, fresh_bottom = self.make(snippets()[0], (2, 4, 2))
        wider = torch.cat([x, x[:, :1]], 1)
        expected = self.run(fresh, fresh_bottom, wider, torch.ones(2, 4, dtype=torch.float64))[0].data
        more = self.run(layer2, bottom2, wider, torch.ones(2, 4, dtype=torch.float64))[0].data
        torch.testing.assert_close(more, expected)  # more streams than ever: states start from zero

    def test_timesteps_are_fixed(self) -> None:
        layer, bottom = self.make(snippets()[0], (2, N, 2))
        with pytest.raises(LayerError, match="number of timesteps changed: got 3"):
            self.run(layer, bottom, torch.zeros(3, N, 2), torch.zeros(3, N))

    def test_exposed_states_get_no_gradient(self) -> None:
        layer, bottom = self.make(snippets()[2], (T, N, 2), 2 + self.num_states)
        for blob in bottom[2:]:
            blob.data.normal_()
        top = self.run(layer, bottom, torch.randn(T, N, 2, dtype=torch.float64), torch.ones(T, N))
        top[0].diff.fill_(1.0)
        for blob in bottom[2:]:
            blob.diff.fill_(7.0)
        layer.run_backward(top, [True, False] + [True] * self.num_states, bottom)
        x_diff = bottom[0].diff.clone()
        for blob in bottom[2:]:
            assert bool((blob.diff == 7.0).all())
        for blob in top[1:]:
            blob.diff.fill_(5.0)
        layer.run_backward(top, [True, False] + [True] * self.num_states, bottom)
        assert torch.equal(bottom[0].diff, x_diff)

    def test_backward_to_cont_is_an_error(self) -> None:
        layer, bottom = self.make(snippets()[0], (T, N, 2))
        top = self.run(layer, bottom, torch.zeros(T, N, 2), torch.zeros(T, N))
        assert not layer.allow_force_backward(1)
        with pytest.raises(LayerError, match="sequence continuation indicators"):
            layer.run_backward(top, [True, True], bottom)

    def test_bad_bottoms_are_reported(self) -> None:
        with pytest.raises(LayerError, match=r"takes \d or \d bottoms"):
            self.make(f"recurrent_param {{ num_output: {H} expose_hidden: true }}", (T, N, 2))
        with pytest.raises(LayerError, match="at least 3 axes"):
            self.make(snippets()[0], (T, N))
        layer, bottom = self.make(snippets()[0], (T, N, 2))
        with pytest.raises(LayerError, match="cont"):
            self.run(layer, bottom, torch.zeros(T, N, 2), torch.zeros(T, N + 1))
        with pytest.raises(LayerError, match="num_output must be positive"):
            self.make("recurrent_param { }", (T, N, 2))

    def test_static_stream_count_must_match(self) -> None:
        param = self.layer_param(f"{STATIC} recurrent_param {{ num_output: {H} }}")
        bottom = [Blob((T, N, 2)), Blob((T, N)), Blob((N + 1, 4))]
        with pytest.raises(LayerError, match="x_static"):
            LAYERS.get(self.layer_type)(param).setup(bottom, [Blob()])

    def test_embedded_weights_are_used(self) -> None:
        """Weights in the LayerParameter replace the fillers' (Caffe would discard them)."""
        layer, _ = self.make(snippets()[0], (T, N, 2))
        again = LAYERS.get(self.layer_type)(layer.to_proto(), dtype=torch.float64)
        again.setup([Blob((T, N, 2)), Blob((T, N))], [Blob()])
        assert all(torch.equal(a.data, b.data) for a, b in zip(again.blobs, layer.blobs))
        param = layer.to_proto()
        param.blobs[0].Clear()
        param.blobs[0].shape.dim.extend([2, 2])
        param.blobs[0].data.extend([0.0] * 4)
        with pytest.raises(LayerError, match="parameter blob 0 has shape"):
            LAYERS.get(self.layer_type)(param).setup([Blob((T, N, 2)), Blob((T, N))], [Blob()])

    def expected_draws(self, shapes_per_step: list[tuple[int, ...]], static: bool) -> list[torch.Tensor]:
        """The values Caffe's unrolled net draws: input transform, then T copies per step."""
        width = shapes_per_step[0][0]
        order = [(width, 6), (width,)] + [(width, 4)] * static + shapes_per_step * T
        generator = rng.get_rng()
        return [torch.from_numpy(generator.gaussian(int(torch.Size(s).numel()), 0.0, 0.5)).view(s)
                for s in order]

    def check_seeded_fill(self, shapes_per_step: list[tuple[int, ...]], kept: int) -> None:
        """Blobs equal the first draws of each kind, and the stream moved past all T copies."""
        fillers = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'
        param = self.layer_param(f'{STATIC} recurrent_param {{ num_output: {H} {fillers} }}')
        rng.set_random_seed(11)
        layer = LAYERS.get(self.layer_type)(param)
        layer.setup([Blob((T, N, 3, 2)), Blob((T, N)), Blob((N, 4))], [Blob()])
        after_layer = rng.get_rng().gaussian(4, 0.0, 1.0)
        rng.set_random_seed(11)
        draws = self.expected_draws(shapes_per_step, True)
        want = draws[: 3 + kept]
        assert [tuple(b.shape) for b in layer.blobs] == [tuple(d.shape) for d in want]
        for blob, values in zip(layer.blobs, want):
            assert torch.equal(blob.data, values)
        assert (rng.get_rng().gaussian(4, 0.0, 1.0) == after_layer).all()
