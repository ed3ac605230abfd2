"""recaffe.math.compiled: the C kernels against PyTorch's, the pieces, the build and its fallback."""

from __future__ import annotations

import pathlib
import shutil
from collections.abc import Iterator

import pytest
import torch

from recaffe.blob import Blob
from recaffe.layers.vision.lrn import LRNLayer
from recaffe.math import compiled, pooling, winograd
from recaffe.proto import caffe_pb2
from recaffe.workers import SERIAL, Workers

TWO = Workers(2)
pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler (cc)")


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def channels_last(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last)


@pytest.fixture
def fresh_build(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> Iterator[None]:
    """A build into an empty cache folder, forgotten afterwards."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    compiled.load.cache_clear()
    yield
    compiled.load.cache_clear()


def test_the_kernels_are_built_once_into_the_cache_folder(fresh_build: None, tmp_path: pathlib.Path) -> None:
    assert compiled.load() is not None
    built = list((tmp_path / "recaffe" / "compiled").glob("kernels-*.so"))
    assert len(built) == 1 and not list(built[0].parent.glob("*.tmp"))
    compiled.load.cache_clear()
    stamp = built[0].stat().st_mtime_ns
    assert compiled.load() is not None and built[0].stat().st_mtime_ns == stamp  # loaded, not built again


def test_a_damaged_library_is_built_again(fresh_build: None) -> None:
    path = compiled.library("cc")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a shared library")  # (a disk error, a foreign file)
    assert compiled.load() is not None and path.read_bytes() != b"not a shared library"
    y = torch.empty(2)
    assert compiled.matvec(torch.eye(2), torch.tensor([3.0, 4.0]), None, y) and y.tolist() == [3.0, 4.0]


@pytest.mark.parametrize("setting", ["off", "compiler"])
def test_without_the_kernels_the_callers_get_none(fresh_build: None, monkeypatch: pytest.MonkeyPatch,
                                                  setting: str) -> None:
    """Turned off, or no compiler: nothing is built and every kernel says it cannot run."""
    if setting == "off":
        monkeypatch.setenv(compiled.ENV, "OFF")
    else:
        monkeypatch.setenv("CC", "/nonexistent/cc")
    assert compiled.load() is None
    x = channels_last(randn(1, 8, 5, 5))
    assert compiled.lrn_across(SERIAL, x, 5, 1e-4, 0.75, 1.0) is None
    assert compiled.pool(SERIAL, x, pooling.PoolWindow((3, 3), (2, 2), (0, 0)), (2, 2), ave=False) is None
    assert not compiled.matvec(randn(4, 3), randn(3), None, torch.empty(4))


def lrn_layer(size: int, alpha: float, beta: float, k: float) -> LRNLayer:
    param = caffe_pb2.LayerParameter(name="norm", type="LRN")
    p = param.lrn_param
    p.local_size, p.alpha, p.beta, p.k = size, alpha, beta, k
    layer = LRNLayer(param)
    layer.setup([Blob((1, 1, 1, 1))], [Blob((1, 1, 1, 1))])
    layer.need_backward = False
    return layer


@pytest.mark.parametrize(("shape", "size", "alpha", "beta", "k"), [
    ((1, 96, 27, 27), 5, 1e-4, 0.75, 1.0),  # CaffeNet's norm1
    ((2, 13, 7, 5), 3, 0.5, 0.75, 2.0),  # channels not a multiple of the vector width
    ((1, 30, 4, 6), 7, 2.0, 0.6, 1.0),  # another power: exp(log(scale)·−β)
    ((1, 3, 5, 5), 9, 1.0, 0.75, 1.0),  # a window wider than the channels
])
def test_lrn_gives_the_layers_values(shape: tuple[int, ...], size: int, alpha: float, beta: float,
                                     k: float) -> None:
    layer = lrn_layer(size, alpha, beta, k)
    x = channels_last(randn(*shape) * 3)
    bottom, top = Blob(shape), Blob(shape)
    bottom.data.copy_(x)
    layer.forward([bottom], [top])
    expected = top.data
    y = compiled.lrn_across(SERIAL, x, size, alpha, beta, k)
    assert y is not None and y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, expected, rtol=2e-6, atol=1e-7)
    assert torch.equal(compiled.lrn_across(TWO, x, size, alpha, beta, k), y)  # in pieces: the same bits


def test_lrn_takes_only_channels_last_float32_on_the_cpu() -> None:
    x = randn(1, 8, 5, 5)
    assert compiled.lrn_across(SERIAL, x, 5, 1e-4, 0.75, 1.0) is None  # row-major
    assert compiled.lrn_across(SERIAL, channels_last(x).double(), 5, 1e-4, 0.75, 1.0) is None
    assert compiled.lrn_across(SERIAL, channels_last(randn(1, compiled.MAX_CHANNELS + 1, 1, 1)), 5, 1.0,
                               0.75, 1.0) is None


@pytest.mark.parametrize(("shape", "kernel", "stride", "pad", "ceil"), [
    ((1, 64, 112, 112), (3, 3), (2, 2), (0, 0), True),  # GoogLeNet's pool1
    ((2, 19, 14, 14), (3, 3), (1, 1), (1, 1), True),  # an inception module's, padded
    ((1, 5, 13, 11), (3, 2), (2, 3), (1, 0), True),  # windows cut by the image's edge
    ((1, 6, 9, 9), (2, 2), (2, 2), (1, 1), False),
    ((1, 7, 7, 7), (7, 7), (1, 1), (0, 0), True),  # global
])
@pytest.mark.parametrize("ave", [False, True])
def test_pooling_gives_caffes_windows(shape: tuple[int, ...], kernel: tuple[int, int],
                                      stride: tuple[int, int], pad: tuple[int, int], ceil: bool,
                                      ave: bool) -> None:
    """MAX the same bits as PyTorch's kernel; AVE Caffe's divisor (padding inside H + pad counts)."""
    x = channels_last(randn(*shape))
    window = pooling.PoolWindow(kernel, stride, pad, ceil)
    out_hw = window.output_shape((shape[2], shape[3]))
    y = compiled.pool(SERIAL, x, window, out_hw, ave)
    assert y is not None and y.shape == (*shape[:2], *out_hw)
    if ave:
        torch.testing.assert_close(y, pooling.ave_pool(x, window, out_hw), rtol=1e-6, atol=1e-7)
    else:
        assert torch.equal(y, pooling.max_pool(x, window, out_hw, with_index=False)[0])
    assert torch.equal(compiled.pool(TWO, x, window, out_hw, ave), y)


def test_max_pooling_passes_over_nan_as_caffe_does() -> None:
    """Caffe's strict > never takes a NaN; a window of nothing but NaN gives −FLT_MAX."""
    x = torch.tensor([[1.0, float("nan")], [float("nan"), float("nan")]]).reshape(1, 1, 2, 2)
    window = pooling.PoolWindow((1, 2), (1, 2), (0, 0))
    y = compiled.pool(SERIAL, channels_last(x), window, (2, 1), ave=False)
    assert y is not None and y.flatten().tolist() == [1.0, -pooling.FLT_MAX]


@pytest.mark.parametrize(("rows", "cols", "bias"), [(4096, 9216, True), (1001, 37, False), (3, 16, True)])
def test_matvec_gives_the_product(rows: int, cols: int, bias: bool) -> None:
    w, x, b = randn(rows, cols), randn(cols, seed=1), randn(rows, seed=2) if bias else None
    y = torch.full((rows,), float("nan"))
    assert compiled.matvec(w, x, b, y)
    expected = w.double() @ x.double() + (0 if b is None else b.double())
    scale = cols**0.5 * float(expected.abs().max())
    torch.testing.assert_close(y.double(), expected, rtol=0, atol=2e-6 * scale)
    assert not compiled.matvec(randn(cols, rows).t(), x, b, y)  # not row-major: not taken


@pytest.mark.parametrize(("m", "size", "pad", "bias", "slope"), [
    (4, (24, 24), (1, 1), True, 0.0),
    (4, (13, 17), (1, 1), False, None),  # tiles past the edge: only the output's pixels written
    (2, (11, 9), (2, 0), True, 0.1),
])
def test_winograd_transforms_give_the_same_convolution(monkeypatch: pytest.MonkeyPatch, m: int,
                                                       size: tuple[int, int], pad: tuple[int, int],
                                                       bias: bool, slope: float | None) -> None:
    """The compiled transforms against PyTorch's products with the Kronecker matrices: the same
    convolution within Winograd's rounding, the same bits on one thread or two."""
    x = channels_last(randn(2, 40, *size))
    w, b = randn(48, 40, 3, 3, seed=1) / 60**0.5, randn(48, seed=2) if bias else None
    u = winograd.kernels(w, m)
    y = winograd.convolution(SERIAL, x, u, b, pad, m, slope)
    assert torch.equal(winograd.convolution(TWO, x, u, b, pad, m, slope), y)
    monkeypatch.setattr(compiled, "load", lambda: None)
    expected = winograd.convolution(SERIAL, x, u, b, pad, m, slope)
    assert y.shape == expected.shape and y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, expected, rtol=0, atol=4e-6 * float(expected.abs().max()))


@pytest.mark.parametrize("dims", [(1, 1000, 1), (3, 21, 10), (2, 1, 5)])
def test_softmax_gives_the_layers_values(dims: tuple[int, int, int]) -> None:
    from recaffe.math.softmax import softmax

    x = randn(*dims) * 20
    y = torch.empty_like(x)
    assert compiled.softmax(x, y, dims)
    torch.testing.assert_close(y, softmax(x, 1, torch.empty_like(x)), rtol=2e-6, atol=1e-7)
    in_place = x.clone()
    assert compiled.softmax(in_place, in_place, dims) and torch.equal(in_place, y)
    big = compiled.SOFTMAX_VALUES + 1
    assert not compiled.softmax(randn(1, big, 1), torch.empty(big), (1, big, 1))  # PyTorch's vectorised exp
