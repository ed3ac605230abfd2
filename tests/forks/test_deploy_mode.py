"""Deploy mode (``optimize=True``) on fork nets: a fork's Dropout that is not the identity at TEST
(SegNet's MC dropout, Faster R-CNN's test-time scaling) still runs; the outputs equal the plain net's."""

from __future__ import annotations

import pathlib

import pytest
import torch

import recaffe

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
