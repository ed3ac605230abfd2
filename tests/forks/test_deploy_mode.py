"""Deploy mode (``optimize=True``) on fork nets: a fork's Dropout that is not the identity at TEST
(SegNet's MC dropout, Faster R-CNN's test-time scaling) still runs; the outputs equal the plain net's.
Export refuses a fork's own layer class rather than writing BVLC's type of the same name."""

from __future__ import annotations

import pathlib

import pytest
import torch

import recaffe
from tests.forks.test_dialects import FIXTURES

NET = """input: "data" input_shape {{ dim: 2 dim: 3 dim: 4 dim: 4 }}
layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param {{ num_output: 4 kernel_size: 1 weight_filler {{ type: "gaussian" std: 1 }} }} }}
layer {{ name: "drop" type: "Dropout" bottom: "conv" top: "conv" dropout_param {{ {0} }} }}
layer {{ name: "relu" type: "ReLU" bottom: "conv" top: "out" }}
"""


@pytest.mark.parametrize("fields", ["sample_weights_test: true", "scale_train: false dropout_ratio: 0.25",
                                    "dropout_ratio: 0.5"])
def test_deploy_mode_keeps_a_dropout_that_acts_at_test(fields: str, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "net.prototxt"
    path.write_text(NET.format(fields))
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    outputs = []
    for optimize in (False, True):
        recaffe.set_random_seed(1)
        net = recaffe.Net(str(path), recaffe.TEST, optimize=optimize)
        net.blobs["data"].data.copy_(x)
        recaffe.set_random_seed(2)
        net.forward()
        outputs.append(net.blobs["out"].data.clone())
    assert torch.equal(outputs[0], outputs[1])  # a skipped fork Dropout would leave relu(conv) unchanged


def test_export_refuses_a_forks_own_layer_class(tmp_path: pathlib.Path) -> None:
    """A fork's Dropout (or BN, ...) exported as BVLC's type of the same name would be silently wrong."""
    from recaffe.export.graph import ExportError, walk

    path = tmp_path / "net.prototxt"
    path.write_text(NET.format("sample_weights_test: true"))
    with pytest.raises(ExportError, match="'drop' .*segnet dialect's layer .*BVLC Caffe's layers only"):
        walk(recaffe.Net(str(path), recaffe.TEST))
    path.write_text(NET.format("dropout_ratio: 0.5"))
    assert [node.type for node in walk(recaffe.Net(str(path), recaffe.TEST)).nodes] == [
        "Convolution", "Dropout", "ReLU"]
    densenet = walk(recaffe.Net(str(FIXTURES / "densenet_pool.prototxt"), recaffe.TEST))  # ceil_mode: BVLC's
    assert "Pooling" in [node.type for node in densenet.nodes]  # Pooling with round_mode, exported as such
