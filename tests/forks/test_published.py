"""Published deploy nets of the forks (tests/fixtures/forks, each with its source and license): they
build in recaffe and, with seeded weights, equal OpenCV dnn where OpenCV loads them (DenseNet-121,
VGG SSD300). SegNet and PSPNet use fork layers OpenCV cannot read (SegNet's BN and Upsample,
PSPNet's BN): SegNet is checked against a plain-torch reading of the net, PSPNet for its shapes; their
layers against references from the forks' C++ (tests/forks/segnet, tests/forks/pspnet). SegNet-Basic's
published train net and solver train on a generated segmentation.

The inputs are smaller than published where the net allows it (global pooling, scale-based upsampling),
so each test takes seconds; no layer is changed."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import recaffe
from recaffe import forks
from recaffe.io import prototxt
from recaffe.proto import caffe_pb2
from tests.forks import published
from tests.forks.test_dialects import FIXTURES


def test_densenet121_with_ceil_mode_equals_opencv_dnn(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("cv2", reason="opencv-python-headless (the forks extra) is not installed")
    path = published.with_input(FIXTURES / "DenseNet_121.prototxt", "densenet", (40, 40),
                                tmp_path / "d.prototxt")
    net = published.seeded_net(path)
    pool1 = next(layer for layer in prototxt.read_net_param(path).layer if layer.name == "pool1")
    assert forks.layer_dialect(pool1) == "densenet"  # its ceil_mode
    # pool1 has ceil_mode: false (20 -> 10; BVLC's ceil would give 11), the others the fork's ceil (5 -> 3)
    assert [net.blobs[f"pool{i}"].shape[2] for i in range(1, 5)] == [10, 5, 3, 2]
    x = np.random.default_rng(0).random((1, 3, 40, 40), dtype=np.float32) * 2 - 1
    theirs = published.opencv_blobs(net, path, "densenet", x, ["pool1", "pool3", "pool4", "fc6"], tmp_path)
    diffs = published.max_abs_diffs(net, theirs)
    assert max(diffs.values()) < 1e-4, diffs


@pytest.mark.slow  # VGG-16 at 264×264, the smallest input its last 3×3 unpadded convolution allows: ~10 s
def test_vgg_ssd300_equals_opencv_dnn_including_detections(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("cv2", reason="opencv-python-headless (the forks extra) is not installed")
    path = published.with_input(FIXTURES / "VGG_SSD300_deploy.prototxt", "ssd", (264, 264),
                                tmp_path / "s.prototxt")
    net = published.seeded_net(path)
    x = np.random.default_rng(0).random((1, 3, 264, 264), dtype=np.float32) * 2 - 1
    names = ["mbox_loc", "mbox_conf_flatten", "mbox_priorbox", "detection_out"]
    theirs = published.opencv_blobs(net, path, "ssd", x, names, tmp_path)
    detections = theirs.pop("detection_out").reshape(-1, 7)
    diffs = published.max_abs_diffs(net, theirs)
    assert max(diffs.values()) < 1e-4, diffs
    mine = net.blobs["detection_out"].data.numpy().reshape(-1, 7)
    assert len(mine) == len(detections) == 200  # keep_top_k
    order = lambda rows: rows[np.lexsort((-rows[:, 2], rows[:, 1], rows[:, 0]))]  # noqa: E731
    np.testing.assert_allclose(order(detections), order(mine), rtol=0, atol=1e-4)


def test_pspnet50_builds_in_its_dialect_with_the_published_shapes() -> None:
    recaffe.set_random_seed(1)
    net = recaffe.Net(str(FIXTURES / "pspnet50_ADE20K_473.prototxt"), recaffe.TEST)
    assert {forks.layer_dialect(layer) for layer in net.to_proto().layer if layer.type == "BN"} == {"pspnet"}
    assert net.blobs["conv5_3_concat"].shape == (1, 4096, 60, 60)  # the pyramid, interpolated back to 60×60
    assert net.blobs["conv6_interp"].shape == (1, 150, 473, 473)
    assert sum(layer.type == "BN" for layer in net.layers) == 60


def torch_segnet(net: recaffe.Net, x: torch.Tensor, dropout_masks: dict[str, torch.Tensor]) -> torch.Tensor:
    """SegNet's deploy net read layer by layer with plain torch ops (max_pool2d indices, max_unpool2d,
    the fork's BN INFERENCE y = scale · x + shift), independently of recaffe's layers."""
    param = net.to_proto()
    segnet = forks.get_dialect("segnet")
    blobs: dict[str, torch.Tensor] = {"data": x.double()}
    for spec, layer in zip(param.layer, net.layers):
        inputs = [blobs[name] for name in spec.bottom]
        weights = [b.data.double() for b in layer.blobs]
        if spec.type == "LRN":
            lrn = spec.lrn_param
            out = [F.local_response_norm(inputs[0], lrn.local_size, lrn.alpha, lrn.beta, lrn.k)]
        elif spec.type == "Convolution":
            pad = spec.convolution_param.pad
            bias = weights[1] if len(weights) > 1 else None
            out = [F.conv2d(inputs[0], weights[0], bias, padding=pad[0] if pad else 0)]
        elif spec.type == "BN":
            out = [inputs[0] * weights[0].view(1, -1, 1, 1) + weights[1].view(1, -1, 1, 1)]
        elif spec.type == "ReLU":
            out = [F.relu(inputs[0])]
        elif spec.type == "Pooling":
            values, index = F.max_pool2d(inputs[0], 2, 2, ceil_mode=True, return_indices=True)
            out = [values, index]
        elif spec.type == "Upsample":
            p = segnet.fork_param(spec).upsample_param
            size = (inputs[0].shape[2] * 2 - p.pad_out_h, inputs[0].shape[3] * 2 - p.pad_out_w)
            out = [F.max_unpool2d(inputs[0], inputs[1], [2, 2], [2, 2], output_size=size)]
        elif spec.type == "Dropout":
            out = [inputs[0] * dropout_masks[spec.name].double() * 2]
        elif spec.type == "Softmax":
            out = [F.softmax(inputs[0], dim=1)]
        elif spec.type == "ArgMax":
            out = [inputs[0].argmax(dim=1, keepdim=True).double()]
        elif spec.type == "Input":
            continue
        else:
            raise AssertionError(f"unexpected layer type {spec.type}")
        blobs.update(zip(spec.top, out))
    return blobs[param.layer[-1].top[0]]


@pytest.mark.parametrize("name", ["segnet_basic_camvid", "bayesian_segnet_basic_camvid"])
def test_segnet_equals_a_plain_torch_reading_of_the_net(name: str, tmp_path: pathlib.Path) -> None:
    # 24×32: the encoder's four 2×2 poolings give 12, 6, 3, 2 rows, the decoder's pad_out_h 3 again
    path = published.with_input(FIXTURES / f"{name}.prototxt", "segnet", (24, 32), tmp_path / "n.prototxt",
                                batch=2)
    net = published.seeded_net(path)
    x = torch.from_numpy(np.random.default_rng(0).random(net.blobs["data"].shape, dtype=np.float32) * 2 - 1)
    net.blobs["data"].data.copy_(x)
    recaffe.set_random_seed(3)
    net.forward()
    top = net.blobs[net.outputs[0]].data.double()
    masks = {layer.name: layer.mask for layer in net.layers if layer.type == "Dropout"}  # type: ignore[attr-defined]
    assert len(masks) == (4 if name.startswith("bayesian") else 0)  # sample_weights_test: MC dropout at test
    want = torch_segnet(net, x, masks)
    assert top.shape == want.shape == (2, 1 if name == "segnet_basic_camvid" else 11, 24, 32)
    torch.testing.assert_close(top, want, rtol=0, atol=1e-4)
    if masks:  # each forward samples again; the seed repeats the samples
        first = top.clone()
        net.forward()
        assert not torch.equal(net.blobs[net.outputs[0]].data.double(), first)
        recaffe.set_random_seed(3)
        net.forward()
        assert torch.equal(net.blobs[net.outputs[0]].data.double(), first)


def test_segnet_basic_trains_from_its_published_solver_and_train_net(tmp_path: pathlib.Path) -> None:
    """SegNet-Basic's train net (DenseImageData, BN LEARN, Upsample, class-weighted SoftmaxWithLoss,
    per-class Accuracy) learns a generated segmentation (class = red level) with its solver's settings."""
    generator = np.random.default_rng(0)
    lines = []
    for i in range(4):
        classes = generator.integers(0, 11, (3, 4)).repeat(8, axis=0).repeat(8, axis=1)  # 24×32, 8×8 blocks
        noise = generator.integers(0, 256, classes.shape)
        rgb = np.stack([classes * 23, noise, np.full(classes.shape, 99)], -1)
        label = np.where(generator.random(classes.shape) < 0.05, 11, classes)  # 11: ignore_label
        Image.fromarray(rgb.astype(np.uint8)).save(tmp_path / f"i{i}.png")
        Image.fromarray(label.astype(np.uint8)).save(tmp_path / f"l{i}.png")
        lines.append(f"{tmp_path}/i{i}.png {tmp_path}/l{i}.png")
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    segnet = forks.get_dialect("segnet")
    net = prototxt.parse_text((FIXTURES / "segnet_basic_train.prototxt").read_text(), segnet.net_parameter())
    net.layer[0].dense_image_data_param.source = str(tmp_path / "train.txt")  # the data, not the net, changes
    (tmp_path / "train.prototxt").write_text(prototxt.to_text(net))
    solver = caffe_pb2.SolverParameter()
    prototxt.parse_text((FIXTURES / "segnet_basic_solver.prototxt").read_text(), solver)
    solver.net, solver.snapshot_prefix = str(tmp_path / "train.prototxt"), str(tmp_path / "snap")
    solver.solver_mode, solver.random_seed = caffe_pb2.SolverParameter.CPU, 1
    solver.snapshot = solver.display = 0
    trainer = recaffe.load_solver(solver)
    losses = []
    for _ in range(8):
        trainer.step(1)
        losses.append(float(trainer.net.blobs["loss"].data))
    assert trainer.net.blobs["per_class_accuracy"].shape == (11, 1, 1, 1)
    assert np.mean(losses[-2:]) < 0.5 * np.mean(losses[:2]), losses
