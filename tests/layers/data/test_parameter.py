from __future__ import annotations

import pytest
import torch

import recaffe
from recaffe.blob import Blob
from recaffe.io import prototxt
from recaffe.layer import LayerError
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_case import LayerCase


class TestParameter(LayerCase):
    layer_type = "Parameter"
    params = [
        "parameter_param { shape { dim: 2 dim: 3 } }",
        "parameter_param { shape { dim: 4 } }",
        "parameter_param { shape { dim: 2 dim: 1 dim: 3 dim: 2 } }",
    ]
    bottom_shapes = []
    # Backward does nothing: the consumers assign the shared diff, so there is no accumulation.
    accumulates_param_diffs = False

    def reference(self, bottoms, blobs, param):
        return (blobs[0] * 1,)

    def test_backward_vs_autograd(self, case: str) -> None:
        # Replaces the harness' version, which zeroes the param diffs after seeding the top
        # diffs; here they are one storage, so the seeded values would be wiped. The contract is
        # the same: after backward, the param diff is d(top)/d(param)ᵀ·dy = dy.
        layer, bottom, top = self.build(case, torch.float64)
        layer.blobs[0].data.normal_(generator=torch.Generator().manual_seed(2))
        self.forward(layer, bottom, top)
        torch.testing.assert_close(top[0].data, layer.blobs[0].data)
        dy = torch.randn(top[0].shape, dtype=torch.float64)
        top[0].diff.copy_(dy)
        layer.run_backward(top, [], bottom)
        torch.testing.assert_close(layer.blobs[0].diff, dy)


def test_parameter_starts_at_zero_and_the_top_shares_it_from_forward_on() -> None:
    case = TestParameter()
    layer, bottom, top = case.build("parameter_param { shape { dim: 2 dim: 3 } }", torch.float32)
    assert layer.blobs[0].shape == (2, 3) == top[0].shape
    assert torch.count_nonzero(layer.blobs[0].data) == 0
    layer.blobs[0].data.fill_(4.0)
    assert torch.count_nonzero(top[0].data) == 0  # as in Caffe, sharing starts at the first forward
    case.forward(layer, bottom, top)
    assert float(top[0].data.min()) == 4.0
    top[0].data.fill_(-1.0)
    assert float(layer.blobs[0].data.max()) == -1.0


def test_weights_given_in_the_layer_parameter_are_used() -> None:
    param = TestParameter().layer_param("parameter_param { shape { dim: 3 } }")
    blob = param.blobs.add()
    blob.shape.dim.append(3)
    blob.data.extend([1.0, 2.0, 3.0])
    layer = recaffe.LAYERS.get("Parameter")(param)
    top = [Blob()]
    layer.setup([], top)
    layer.run_forward([], top)
    assert top[0].data.tolist() == [1.0, 2.0, 3.0]


def test_loaded_weights_of_another_size_are_reported() -> None:
    param = TestParameter().layer_param("parameter_param { shape { dim: 2 } }")
    blob = param.blobs.add()
    blob.shape.dim.append(3)
    blob.data.extend([1.0, 2.0, 3.0])
    with pytest.raises(LayerError, match=r"parameter blob has shape \(3,\)"):
        recaffe.LAYERS.get("Parameter")(param).setup([], [Blob()])


def test_consumers_write_their_gradient_into_the_parameter_diff() -> None:
    text = """
        layer { name: "p" type: "Parameter" top: "p" parameter_param { shape { dim: 2 dim: 3 } } }
        layer { name: "sum" type: "Reduction" bottom: "p" top: "s" loss_weight: 2
                reduction_param { operation: SUMSQ } }
    """
    net = recaffe.Net(prototxt.parse_text(text, caffe_pb2.NetParameter()), recaffe.TRAIN)
    weights = net.layer_by_name("p").blobs[0]
    weights.data.copy_(torch.arange(6.0).view(2, 3))
    assert net.forward() == pytest.approx(2 * 55.0)
    net.backward()
    torch.testing.assert_close(weights.diff, 4 * torch.arange(6.0).view(2, 3))
