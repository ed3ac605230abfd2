from __future__ import annotations

import pytest
import torch

from recaffe.layer import LayerError
from recaffe.testing.layer_case import LayerCase

FILLERS = 'weight_filler { type: "gaussian" } bias_filler { type: "gaussian" }'


class TestEmbed(LayerCase):
    layer_type = "Embed"
    params = [
        f"embed_param {{ num_output: 4 input_dim: 10 {FILLERS} }}",
        f"embed_param {{ num_output: 3 input_dim: 5 bias_term: false {FILLERS} }}",
    ]
    bottom_shapes = [(4, 3)]
    check_bottoms = []  # no gradient to the indices

    def make_bottoms(self, param, generator):
        k = param.embed_param.input_dim
        return [torch.randint(0, k, shape, generator=generator).double() for shape in self.bottom_shapes]

    def reference(self, bottoms, blobs, param):
        y = blobs[0][bottoms[0].detach().long()]
        return (y + blobs[1] if param.embed_param.bias_term else y,)


def build(values: list[list[float]], snippet: str = TestEmbed.params[0]):
    case = TestEmbed()
    case.make_bottoms = lambda param, generator: [torch.tensor(values, dtype=torch.float64)]
    return case.build(snippet, torch.float64)


def test_rows_are_copied_and_repeated_indices_accumulate() -> None:
    layer, bottom, top = build([[2.0, 7.0, 2.0]])
    layer.run_forward(bottom, top)
    weight, bias = layer.blobs[0].data, layer.blobs[1].data
    assert layer.blobs[0].shape == (10, 4)  # (input_dim, num_output)
    assert top[0].shape == (1, 3, 4)
    torch.testing.assert_close(top[0].data[0, 1], weight[7] + bias)
    top[0].diff.fill_(1.0)
    layer.run_backward(top, [False], bottom)
    assert layer.blobs[0].diff[2].tolist() == [2.0] * 4
    assert layer.blobs[0].diff[7].tolist() == [1.0] * 4
    assert layer.blobs[1].diff.tolist() == [3.0] * 4


@pytest.mark.parametrize("bad", [10.0, -1.0, 2.5])
def test_indices_must_be_integers_in_range(bad: float) -> None:
    layer, bottom, top = build([[0.0, 1.0]])
    bottom[0].data[0, 1] = bad
    with pytest.raises(LayerError, match=f"input {bad} is not an integer index in \\[0, 10\\)"):
        layer.run_forward(bottom, top)


def test_no_gradient_to_the_input() -> None:
    layer, bottom, top = build([[0.0, 1.0]])
    layer.run_forward(bottom, top)
    with pytest.raises(LayerError, match="cannot backpropagate to the input"):
        layer.run_backward(top, [True], bottom)
    assert not layer.allow_force_backward(0)


@pytest.mark.parametrize(("snippet", "message"), [
    ("embed_param { input_dim: 3 }", "num_output must be > 0"),
    ("embed_param { num_output: 3 }", "input_dim must be > 0"),
])
def test_sizes_must_be_positive(snippet: str, message: str) -> None:
    with pytest.raises(LayerError, match=message):
        build([[0.0]], snippet)
