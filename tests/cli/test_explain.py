"""``recaffe explain`` on the BVLC CaffeNet and LeNet solvers (copied into tests/fixtures/export
in Caffe's folder layout: the solvers name their nets relative to Caffe's root)."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import pytest

from tests.cli.conftest import Result

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "export"


def test_caffenet_solver(cli: Callable[..., Result]) -> None:
    result = cli("explain", FIXTURES / "models/bvlc_reference_caffenet/solver.prototxt")
    assert result.status == 0, result.err
    out = result.out
    # input preprocessing from transform_param: mean image, crop, mirror, BGR, 0..255
    assert "mean image 'data/ilsvrc12/imagenet_mean.binaryproto'" in out
    assert "crop 227×227 (random offset in TRAIN, centre in TEST)" in out
    assert "mirror" in out and "BGR" in out and "0..255" in out
    # fillers with their fan-in, and biases: CaffeNet's constant 1 biases and gaussian weights
    assert "[init] weight of conv1, conv2, conv3, conv4, conv5, fc8" in out
    assert "nn.init.normal_(w, mean=0, std=0.01)" in out
    assert "[init] bias of conv2, conv4, conv5, fc6, fc7" in out and "nn.init.constant_(w, 1)" in out
    assert "kaiming_uniform_(a=√5)" in out
    # LRN alpha: Caffe divides by n; TensorFlow needs alpha / size
    assert out.count("[LRN] norm") == 2
    assert "alpha=0.0001 / 5" in out and "nn.LocalResponseNorm(size=5, alpha=0.0001, beta=0.75, k=1)" in out
    # pooling rounding
    assert out.count("[pooling] pool") == 3
    assert "nn.MaxPool2d((3, 3), stride=(2, 2), padding=(0, 0), ceil_mode=True)" in out
    # solver: momentum holds lr·g, the step policy per iteration, weight decay with decay_mult
    assert "holds lr·g" in out and "torch.optim.SGD keeps v ← μ·v + g" in out
    assert "lr(it) = 0.01 * 0.1 ** (it // 100000)" in out
    assert "weight_decay 0.0005 (L2); conv1[1] lr×2 decay×0" in out
    assert "loss = F.cross_entropy(x, label.long(), reduction='mean') * 1" in out


def test_lenet_solver(cli: Callable[..., Result]) -> None:
    result = cli("explain", FIXTURES / "examples/mnist/lenet_solver.prototxt")
    assert result.status == 0, result.err
    out = result.out
    assert "multiply by scale 0.00390625" in out and "1/256, not 1/255" in out and "x = x * 0.00390625" in out
    assert "xavier: U(±√(3/n)) with n = fan_in" in out and "bound = math.sqrt(3.0 / (fan_in))" in out
    assert "[init] bias of conv1, conv2, ip1, ip2" in out and "nn.init.constant_(w, 0)" in out
    assert "lr(it) = 0.01 * (1 + 0.0001 * it) ** -0.75" in out
    assert out.count("[pooling] pool") == 2
    assert "[LRN]" not in out and "[BatchNorm]" not in out


def test_batch_norm_net(cli: Callable[..., Result], caffe_models: pathlib.Path) -> None:
    result = cli("explain", caffe_models / "examples/cifar10/cifar10_full_sigmoid_train_test_bn.prototxt")
    assert result.status == 0, result.err
    assert result.out.count("[BatchNorm] bn") == 3
    assert "m/(m−1)" in result.out and "μ_sum/s" in result.out
    assert "[update]" not in result.out  # a net alone: no solver findings


def test_missing_net_is_a_clear_error(cli: Callable[..., Result], tmp_path: pathlib.Path) -> None:
    solver = tmp_path / "solver.prototxt"
    solver.write_text('net: "nowhere/train_val.prototxt"\nbase_lr: 0.1\n')
    result = cli("explain", solver)
    assert result.status == 1
    assert "net 'nowhere/train_val.prototxt' is not under" in result.fatal()


@pytest.mark.parametrize("flag", ["--help"])
def test_help(flag: str, cli: Callable[..., Result]) -> None:
    with pytest.raises(SystemExit):
        cli("explain", flag)
