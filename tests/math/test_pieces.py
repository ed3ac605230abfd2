"""Kernels cut into pieces for worker threads give the plain kernels' values."""

from __future__ import annotations

import functools

import pytest
import torch

from recaffe.blob import Blob
from recaffe.layers.utility.concat import ConcatLayer
from recaffe.layers.vision.lrn import LRNLayer
from recaffe.layers.vision.pooling import PoolingLayer
from recaffe.math import pieces
from recaffe.math.convolution import convolution
from recaffe.math.im2col import Geometry
from recaffe.proto import caffe_pb2
from recaffe.workers import SERIAL, Workers

THREE = Workers(3)


@pytest.fixture(autouse=True)
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cut even these small tensors into pieces."""
    monkeypatch.setattr(pieces, "MIN_PIECE_MACS", 1)
    monkeypatch.setattr(pieces, "MIN_PIECE_VALUES", 1)


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("n", "groups", "slope"), [(4, 1, 0.0), (5, 2, None), (1, 1, 0.1), (1, 2, 0.0),
                                                    (2, 4, 0.0), (1, 4, None)])
def test_convolution_by_images_or_as_one_kernel(n: int, groups: int, slope: float | None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of at least three images are cut by images; fewer run as one kernel, on the
    caller's PyTorch threads."""
    g = Geometry((3, 3), (2, 1), (1, 0), (1, 1))
    x, w, b = randn(n, 8, 9, 7), randn(48, 8 // groups, 3, 3, seed=1), randn(48, seed=2)
    expected = convolution(x, w, b, g, groups, False)
    if slope is not None:
        expected = torch.where(expected > 0, expected, expected * slope)
    counts: list[int] = []

    def counted(*args: object) -> torch.Tensor:
        counts.append(torch.get_num_threads())
        return convolution(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(pieces, "plain_convolution", counted)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        y = pieces.convolution(THREE, x, w, b, g, groups, slope)
        assert counts == ([] if n >= 3 else [1])
    finally:
        torch.set_num_threads(before)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(pieces.convolution(THREE, x, w, b, g, groups, slope), y)  # the same every time


@pytest.mark.parametrize(("m", "linear"), [(1, False), (3, False), (1, True), (4, True)])
def test_inner_product_by_rows(m: int, linear: bool) -> None:
    x, w, b = randn(m, 20), randn(50, 20, seed=1), randn(50, seed=2)
    y = torch.empty(m, 50)
    pieces.inner_product(THREE, x, w, b, y, (lambda x, w, b: x @ w.t() + b) if linear else None, 0.0)
    torch.testing.assert_close(y, torch.relu(x @ w.t() + b))


def test_sum_in_ranges_of_memory() -> None:
    xs = [randn(2, 6, 5, 5, seed=i).contiguous(memory_format=torch.channels_last) for i in range(3)]
    y = torch.empty_like(xs[0])
    pieces.sum_(THREE, y, xs, 0.0)
    assert torch.equal(y, torch.relu(xs[0] + xs[1] + xs[2]))
    mixed = [xs[0], xs[1].contiguous()]  # layouts differ: one piece
    pieces.sum_(THREE, y, mixed, None)
    assert torch.equal(y, xs[0] + xs[1])


def run(layer_param: caffe_pb2.LayerParameter, layer_type: type,
        bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
    """The layer's top from its plain forward and from its forward on three threads."""
    tops = []
    for workers in (SERIAL, THREE):
        layer = layer_type(layer_param)
        bottom, top = [Blob(x.shape) for x in bottoms], [Blob()]
        layer.setup(bottom, top)
        for blob, x in zip(bottom, bottoms):
            blob.adopt_data(x.clone(memory_format=torch.preserve_format))
        layer.run_forward(bottom, top, functools.partial(layer.forward, workers=workers))
        tops.append(top[0].data.clone())
    return tops


@pytest.mark.parametrize("pool", [caffe_pb2.PoolingParameter.MAX, caffe_pb2.PoolingParameter.AVE])
def test_pooling_by_images(pool: int) -> None:
    p = caffe_pb2.LayerParameter(name="pool", type="Pooling", phase=caffe_pb2.TEST)
    p.pooling_param.pool = pool
    p.pooling_param.kernel_size, p.pooling_param.stride, p.pooling_param.pad = 3, 2, 1
    plain, shared = run(p, PoolingLayer, [randn(5, 4, 9, 8).contiguous(memory_format=torch.channels_last)])
    assert torch.equal(plain, shared)


@pytest.mark.parametrize(("shape", "region"), [((1, 7, 10, 6), caffe_pb2.LRNParameter.ACROSS_CHANNELS),
                                               ((4, 7, 5, 6), caffe_pb2.LRNParameter.ACROSS_CHANNELS),
                                               ((4, 3, 5, 6), caffe_pb2.LRNParameter.WITHIN_CHANNEL)])
def test_lrn_by_images_or_rows(shape: tuple[int, ...], region: int) -> None:
    p = caffe_pb2.LayerParameter(name="norm", type="LRN", phase=caffe_pb2.TEST)
    p.lrn_param.local_size, p.lrn_param.alpha, p.lrn_param.norm_region = 3, 0.5, region
    plain, shared = run(p, LRNLayer, [randn(*shape).contiguous(memory_format=torch.channels_last)])
    assert torch.equal(plain, shared)


def test_concat_copies_in_parallel() -> None:
    p = caffe_pb2.LayerParameter(name="cat", type="Concat")
    xs = [randn(2, c, 4, 3, seed=c).contiguous(memory_format=torch.channels_last) for c in (3, 5, 2)]
    plain, shared = run(p, ConcatLayer, xs)
    assert torch.equal(plain, torch.cat(xs, 1)) and torch.equal(shared, plain)
