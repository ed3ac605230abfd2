"""Every deploy net in ../shared/caffe-models, with seeded random weights, through ONNX
(onnxruntime), to_torch and the written OUT.py + OUT.pt (in a fresh process that cannot import
recaffe), at batch 1 and 4: outputs equal recaffe's forward within 1e-5 relative to the output's
largest magnitude (1e-4 for nets deeper than 50 layers)."""

from __future__ import annotations

import json
import math
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
import torch

import recaffe
from recaffe.export import to_torch, write_torch
from recaffe.export.graph import walk
from tests.conftest import SHARED

onnxruntime = pytest.importorskip("onnxruntime")
from recaffe.export.onnx import build  # noqa: E402  (needs the onnx package)

MODELS = SHARED / "caffe-models"
NETS = [
    "models/bvlc_alexnet/deploy.prototxt",
    "models/bvlc_googlenet/deploy.prototxt",
    "models/bvlc_reference_caffenet/deploy.prototxt",
    "models/bvlc_reference_rcnn_ilsvrc13/deploy.prototxt",
    "models/finetune_flickr_style/deploy.prototxt",
    "examples/net_surgery/bvlc_caffenet_full_conv.prototxt",
    "examples/mnist/lenet.prototxt",
    "examples/cifar10/cifar10_quick.prototxt",
    "examples/cifar10/cifar10_full.prototxt",
    "examples/siamese/mnist_siamese.prototxt",
]
BATCHES = (1, 4)
# input shapes other than the prototxt's, where the net allows it (a fully convolutional net)
SPATIAL = {"examples/net_surgery/bvlc_caffenet_full_conv.prototxt": (3, 227, 227)}

# One fresh process serves every net: it reads a folder per line, runs the net.py + net.pt found
# there on inputs.pt, writes outputs.pt and answers with the recaffe modules it has loaded.
FRESH_PROCESS = r"""
import importlib.util, json, sys
sys.modules["recaffe"] = None  # importing recaffe now fails
import torch
torch.set_num_threads(1)
for line in sys.stdin:
    folder = line.strip()
    spec = importlib.util.spec_from_file_location("exported", f"{folder}/net.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.Net()
    net.load_state_dict(torch.load(f"{folder}/net.pt"))
    net.eval()
    with torch.no_grad():
        outputs = [net(**batch) for batch in torch.load(f"{folder}/inputs.pt")]
    torch.save(outputs, f"{folder}/outputs.pt")
    loaded = sorted(m for m in sys.modules if m.startswith("recaffe") and sys.modules[m])
    print(json.dumps(loaded), flush=True)
"""


def seeded_weights(net: recaffe.Net, seed: int = 0) -> None:
    """Gaussian weights of variance 1/fan_in from torch's seeded generator (cheap next to Caffe's
    filler stream); the activations shrink layer by layer, so the softmax does not saturate."""
    generator = torch.Generator().manual_seed(seed)
    for blobs in net.layer_params.values():
        for blob in blobs:
            fan_in = math.prod(blob.shape[1:]) if len(blob.shape) > 1 else 100
            blob.data.copy_(torch.randn(blob.shape, generator=generator) * math.sqrt(1 / fan_in))


def relative_error(ours: torch.Tensor | np.ndarray, reference: torch.Tensor) -> float:
    ours_t = torch.as_tensor(ours).reshape(reference.shape)
    return float((ours_t - reference).abs().max()) / max(float(reference.abs().max()), 1e-30)


class Case:
    """A net with seeded weights and recaffe's outputs for random inputs at each batch size."""

    def __init__(self, relative: str) -> None:
        self.net = recaffe.Net(MODELS / relative, recaffe.TEST)
        seeded_weights(self.net)
        self.graph = walk(self.net)
        self.tolerance = 1e-4 if len(self.graph.nodes) > 50 else 1e-5
        generator = torch.Generator().manual_seed(1)
        self.inputs: list[dict[str, torch.Tensor]] = []
        self.outputs: list[dict[str, torch.Tensor]] = []
        for batch in BATCHES:
            feed = {name: torch.randn((batch, *SPATIAL.get(relative, shape[1:])), generator=generator)
                    for name, shape in self.graph.inputs}
            for name, value in feed.items():
                self.net.blobs[name].reshape(*value.shape)
                self.net.blobs[name].data.copy_(value)
            self.net.reshape()
            self.net.forward()
            self.inputs.append(feed)
            self.outputs.append({blob: self.net.blobs[blob].data.clone() for blob, _ in self.graph.outputs})

    def check(self, got: list[dict[str, torch.Tensor | np.ndarray]], what: str) -> None:
        for batch, ours, reference in zip(BATCHES, got, self.outputs):
            assert sorted(ours) == sorted(reference), what
            for blob, value in reference.items():
                error = relative_error(ours[blob], value)
                assert error <= self.tolerance, f"{what}, batch {batch}, {blob}: relative error {error:.3g}"


@pytest.fixture(scope="module", params=NETS, ids=[n.split("/")[-2] + "/" + n.split("/")[-1] for n in NETS])
def case(request: pytest.FixtureRequest) -> Case:
    if not MODELS.is_dir():
        pytest.skip("../shared/caffe-models is not present")
    torch.set_num_threads(1)
    return Case(request.param)


def test_onnx_matches_recaffe(case: Case) -> None:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL  # as built
    session = onnxruntime.InferenceSession(build(case.net, check=False).SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
    names = [blob for blob, _ in case.graph.outputs]
    got = []
    for feed in case.inputs:
        values = session.run([value for _, value in case.graph.outputs],
                             {name: value.numpy() for name, value in feed.items()})
        got.append(dict(zip(names, values)))
    case.check(got, "onnx")  # type: ignore[arg-type]


def test_to_torch_matches_recaffe(case: Case) -> None:
    module = to_torch(case.net)
    with torch.no_grad():
        case.check([module(**feed) for feed in case.inputs], "to_torch")  # type: ignore[misc]


@pytest.fixture(scope="module")
def fresh_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[str]]:
    cwd = tmp_path_factory.mktemp("fresh")
    pipe = subprocess.PIPE
    with subprocess.Popen([sys.executable, "-c", FRESH_PROCESS], stdin=pipe, stdout=pipe, stderr=pipe,
                          text=True, cwd=cwd,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}) as process:
        yield process
        process.stdin.close()  # type: ignore[union-attr]
        process.wait(timeout=60)


def test_written_module_runs_without_recaffe(case: Case, tmp_path: pathlib.Path,
                                             fresh_process: subprocess.Popen[str]) -> None:
    write_torch(case.net, tmp_path / "net.py")
    torch.save(case.inputs, tmp_path / "inputs.pt")
    fresh_process.stdin.write(f"{tmp_path}\n")  # type: ignore[union-attr]
    fresh_process.stdin.flush()  # type: ignore[union-attr]
    answer = fresh_process.stdout.readline()  # type: ignore[union-attr]
    assert answer, fresh_process.stderr.read()[-3000:]  # type: ignore[union-attr]
    assert json.loads(answer) == []
    case.check(torch.load(tmp_path / "outputs.pt"), "OUT.py + OUT.pt")
