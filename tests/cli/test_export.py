"""``recaffe export``: ONNX and PyTorch files from a prototxt and its weights, and clear errors."""

from __future__ import annotations

import importlib.util
import pathlib
from collections.abc import Callable

import numpy as np
import pytest
import torch

import recaffe
from tests.cli.conftest import Result

onnxruntime = pytest.importorskip("onnxruntime")

NET = """name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 7 dim: 7 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
  pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip" inner_product_param { num_output: 3
  weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


@pytest.fixture
def model(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path, recaffe.Net]:
    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text(NET)
    recaffe.set_random_seed(5)
    net = recaffe.Net(prototxt, recaffe.TEST)
    weights = tmp_path / "net.caffemodel"
    net.save(weights)
    net.blobs["data"].data.copy_(torch.randn(2, 3, 7, 7, generator=torch.Generator().manual_seed(0)))
    net.forward()
    return prototxt, weights, net


def test_export_onnx(cli: Callable[..., Result], model: tuple, tmp_path: pathlib.Path) -> None:  # type: ignore[type-arg]
    prototxt, weights, net = model
    out = tmp_path / "net.onnx"
    result = cli("export", "-model", prototxt, "-weights", weights, "-output", out)
    assert result.status == 0, result.err
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (prob,) = session.run(["prob"], {"data": net.blobs["data"].data.numpy()})
    np.testing.assert_allclose(prob, net.blobs["prob"].data.numpy(), rtol=1e-5, atol=1e-6)


def test_export_pytorch(cli: Callable[..., Result], model: tuple, tmp_path: pathlib.Path) -> None:  # type: ignore[type-arg]
    prototxt, weights, net = model
    out = tmp_path / "net.py"
    result = cli("export", "--model", prototxt, "--weights", weights, "--output", out)
    assert result.status == 0, result.err
    assert f"Wrote {out} and {tmp_path / 'net.pt'}" in result.messages
    spec = importlib.util.spec_from_file_location("exported_tiny", out)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    exported = module.Net()
    exported.load_state_dict(torch.load(tmp_path / "net.pt"))
    with torch.no_grad():
        prob = exported.eval()(net.blobs["data"].data)["prob"]
    torch.testing.assert_close(prob, net.blobs["prob"].data, rtol=1e-5, atol=1e-6)
    source = out.read_text()
    assert "self.pool = Pool('AVE', (2, 2), (2, 2), (0, 0), ceil_mode=True)  # 'pool'" in source
    assert "import recaffe" not in source and "from recaffe" not in source


@pytest.mark.parametrize(("args", "message"), [
    ((), "Need a model definition to export"),
    (("-model", "{prototxt}", "-output", "x.txt"), "-output must end in .onnx (ONNX) or .py (PyTorch)"),
])
def test_export_errors(cli: Callable[..., Result], model: tuple, args: tuple[str, ...],  # type: ignore[type-arg]
                       message: str) -> None:
    result = cli("export", *(a.format(prototxt=model[0]) for a in args))
    assert result.status == 1
    assert message in result.fatal()


def test_export_names_the_layer_without_exact_form(cli: Callable[..., Result],
                                                  tmp_path: pathlib.Path) -> None:
    prototxt = tmp_path / "loss.prototxt"
    prototxt.write_text(
        NET + 'layer { name: "label" type: "Input" top: "label" input_param { shape { dim: 2 } } }\n'
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }\n')
    result = cli("export", "-model", prototxt, "-output", tmp_path / "out.onnx")
    assert result.status == 1
    assert "layer 'loss' (type SoftmaxWithLoss): a loss layer is training-only" in result.fatal()
