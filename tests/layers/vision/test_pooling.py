from __future__ import annotations

import itertools
import math

import pytest
import torch

from recaffe import rng
from recaffe.blob import Blob
from recaffe.io import prototxt
from recaffe.layer import LayerError
from recaffe.layers.vision.pooling import PoolingLayer
from recaffe.math import pooling
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_case import LayerCase
from tests.conftest import cuda_available
from tests.layers.vision.reference import FLT_MAX, naive_pool

P = caffe_pb2.PoolingParameter

# Shared by MAX and AVE: torch's kernels, explicit padding (pad > kernel/2), ceil windows that
# hang over the edge, FLOOR, rectangular forms, global pooling.
WINDOWS = [
    "kernel_size: 3 stride: 2",
    "kernel_size: 3 stride: 2 pad: 1",
    "kernel_size: 3 stride: 2 pad: 2",
    "kernel_size: 4 stride: 3 pad: 3",
    "kernel_size: 2 stride: 2",
    "kernel_size: 2 stride: 2 round_mode: FLOOR",
    "kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0",
    "kernel_h: 4 kernel_w: 3 stride: 2 pad_h: 2 pad_w: 1",
    "global_pooling: true",
]


def window_of(p: caffe_pb2.PoolingParameter, h: int, w: int) -> tuple[tuple[int, int], ...]:
    """(kernel, stride, pad) as (h, w) pairs, read independently of the layer."""
    if p.global_pooling:
        kernel = (h, w)
    else:
        kernel = (p.kernel_size,) * 2 if p.HasField("kernel_size") else (p.kernel_h, p.kernel_w)
    stride = (p.stride_h, p.stride_w) if p.HasField("stride_h") else (p.stride,) * 2
    pad = (p.pad_h, p.pad_w) if p.HasField("pad_h") else (p.pad,) * 2
    return kernel, stride, pad


class PoolCase(LayerCase):
    bottom_shapes = [(2, 3, 6, 5)]
    stepsize = 1e-4  # nearby values in one window are kinks for MAX

    def reference(self, bottoms, blobs, param):
        (x,) = bottoms
        p = param.pooling_param
        top, mask = naive_pool(x, *window_of(p, *x.shape[2:]), p.pool, p.round_mode == P.CEIL)
        return (top,) if self.num_tops == 1 else (top, mask)


class TestPoolingMax(PoolCase):
    layer_type = "Pooling"
    params = [f"pooling_param {{ pool: MAX {w} }}" for w in WINDOWS]


class TestPoolingMaxMask(PoolCase):
    layer_type = "Pooling"
    num_tops = 2
    check_tops = [0]
    params = [f"pooling_param {{ pool: MAX {w} }}" for w in WINDOWS[:4]]


class TestPoolingAve(PoolCase):
    layer_type = "Pooling"
    params = [f"pooling_param {{ pool: AVE {w} }}" for w in WINDOWS]


def make(fields: str, shape: tuple[int, ...], tops: int = 1, phase: int = caffe_pb2.TRAIN,
         device: str = "cpu") -> tuple[PoolingLayer, list[Blob], list[Blob]]:
    param = prototxt.parse_text(f"pooling_param {{ {fields} }}",
                                caffe_pb2.LayerParameter(name="pool", type="Pooling", phase=phase))
    layer = PoolingLayer(param, device=device)
    bottom, top = [Blob(shape, device=device)], [Blob(device=device) for _ in range(tops)]
    layer.setup(bottom, top)
    return layer, bottom, top


def run(fields: str, x: torch.Tensor, tops: int = 1) -> list[torch.Tensor]:
    layer, bottom, top = make(fields, tuple(x.shape), tops)
    bottom[0].data.copy_(x)
    layer.run_forward(bottom, top)
    return [t.data for t in top]


SQUARE = torch.tensor([[1.0, 2, 5, 2, 3], [9, 4, 1, 4, 8], [1, 2, 5, 2, 3]]).expand(2, 2, 3, 5)
MAGIC6 = torch.tensor([[35.0, 1, 6, 26, 19, 24], [3, 32, 7, 21, 23, 25], [31, 9, 2, 22, 27, 20],
                       [8, 28, 33, 17, 10, 15], [30, 5, 34, 12, 14, 16], [4, 36, 29, 13, 18, 11]])


@pytest.mark.parametrize("tops", [1, 2])
def test_max_square_values_and_mask(tops: int) -> None:
    """Caffe's TestForwardSquare: 2x2 MAX over a 3x5 plane; the first maximum's index wins."""
    out = run("pool: MAX kernel_size: 2", SQUARE, tops)
    assert out[0][1, 1].tolist() == [[9, 5, 5, 8], [9, 5, 5, 8]]
    if tops == 2:
        assert out[1][0, 0].tolist() == [[5, 2, 2, 9], [5, 12, 12, 9]]


def test_max_rect_high_values_and_mask() -> None:
    """Caffe's TestForwardRectHigh: a 3x2 kernel over magic(6)."""
    top, mask = run("pool: MAX kernel_h: 3 kernel_w: 2", MAGIC6.expand(2, 2, 6, 6), 2)
    assert top[1, 0].tolist() == [[35, 32, 26, 27, 27], [32, 33, 33, 27, 27], [31, 34, 34, 27, 27],
                                  [36, 36, 34, 18, 18]]
    assert mask[0, 1].tolist() == [[0, 7, 3, 16, 16], [7, 20, 20, 16, 16], [12, 26, 26, 16, 16],
                                   [31, 31, 26, 34, 34]]


def test_max_rect_wide_values() -> None:
    """Caffe's TestForwardRectWide: a 2x3 kernel over magic(6)."""
    top, mask = run("pool: MAX kernel_h: 2 kernel_w: 3", MAGIC6.expand(1, 1, 6, 6), 2)
    assert top[0, 0].tolist() == [[35, 32, 26, 26], [32, 32, 27, 27], [33, 33, 33, 27],
                                  [34, 34, 34, 17], [36, 36, 34, 18]]
    assert mask[0, 0].tolist() == [[0, 7, 3, 3], [7, 7, 16, 16], [20, 20, 20, 16],
                                   [26, 26, 26, 21], [31, 31, 26, 34]]


def test_max_padded_values() -> None:
    """Caffe's TestForwardMaxPadded: kernel 3, stride 2, pad 2 (more than torch allows)."""
    x = torch.tensor([[1.0, 2, 4], [2, 3, 2], [4, 2, 1]]).view(1, 1, 3, 3)
    (top,) = run("pool: MAX kernel_size: 3 stride: 2 pad: 2", x)
    assert top[0, 0].tolist() == [[1, 4, 4], [4, 4, 4], [4, 4, 1]]


def test_ave_padded_values() -> None:
    """Caffe's TestForwardAve: padding cells count in the divisor."""
    (top,) = run("pool: AVE kernel_size: 3 stride: 1 pad: 1", torch.full((1, 1, 3, 3), 2.0))
    torch.testing.assert_close(top[0, 0], torch.tensor([[8 / 9, 4 / 3, 8 / 9], [4 / 3, 2, 4 / 3],
                                                        [8 / 9, 4 / 3, 8 / 9]]))


def test_ave_pad_close_to_kernel() -> None:
    """pad 2 with kernel 3 (beyond torch's pad <= kernel/2): the divisor counts padding cells
    inside H + pad, so every window divides by 9 whatever it covers of the image."""
    (top,) = run("pool: AVE kernel_size: 3 stride: 2 pad: 2", torch.ones(1, 1, 3, 3))
    torch.testing.assert_close(top[0, 0], torch.tensor([[1, 3, 1], [3, 9, 3], [1, 3, 1]]) / 9.0)


def test_ave_ceil_window_over_the_edge() -> None:
    """Without pad, a ceil-mode window that hangs over the edge divides by its clipped size."""
    x = torch.arange(16.0).view(1, 1, 4, 4)
    (top,) = run("pool: AVE kernel_size: 3 stride: 2", x)  # ceil(1/2) + 1 = 2 windows per axis
    assert top[0, 0].tolist() == [[5.0, 6.5], [11.0, 12.5]]
    (top,) = run("pool: AVE kernel_size: 3 stride: 2 pad: 1", x)  # 3 windows; the last starts at 3
    assert top[0, 0, 1, 1].item() == pytest.approx((5 + 6 + 7 + 9 + 10 + 11 + 13 + 14 + 15) / 9)
    # The corner window covers rows/cols 3..4: one image cell, and row/col 4 lies inside H + pad,
    # so Caffe divides by 2 x 2.
    assert top[0, 0, 2, 2].item() == pytest.approx(15 / 4)


def test_empty_windows_without_pad_follow_caffe() -> None:
    """kernel 1, stride 2 on 4 rows: ceil gives a 3rd window starting at row 4, outside the image.

    Caffe keeps it (the clip rule needs a pad): MAX gives −FLT_MAX with mask −1, AVE divides 0 by
    a pool size of 0 (NaN).
    """
    x = torch.arange(16.0).view(1, 1, 4, 4)
    top, mask = run("pool: MAX kernel_size: 1 stride: 2", x, 2)
    assert top.shape == (1, 1, 3, 3)
    assert top[0, 0, :2, :2].tolist() == mask[0, 0, :2, :2].tolist() == [[0, 2], [8, 10]]
    assert (top[0, 0, 2] == -FLT_MAX).all() and (mask[0, 0, :, 2] == -1).all()
    (ave,) = run("pool: AVE kernel_size: 1 stride: 2", x)
    assert ave[0, 0, :2, :2].tolist() == [[0, 2], [8, 10]]
    assert ave[0, 0, 2].isnan().all() and ave[0, 0, :, 2].isnan().all()


def test_backward_drops_empty_windows() -> None:
    layer, bottom, top = make("pool: MAX kernel_size: 1 stride: 2", (1, 1, 4, 4))
    bottom[0].data.copy_(torch.arange(16.0).view(1, 1, 4, 4))
    layer.run_forward(bottom, top)
    top[0].diff.fill_(1)
    layer.run_backward(top, [True], bottom)
    assert bottom[0].diff.sum() == 4 and bottom[0].diff[0, 0, ::2, ::2].eq(1).all()


@pytest.mark.parametrize(("fields", "shape", "expected"), [
    ("kernel_size: 3 stride: 2", (2, 3, 6, 5), (3, 2)),  # Caffe's TestSetup
    ("pool: AVE kernel_size: 3 stride: 2 pad: 1", (2, 3, 6, 5), (4, 3)),  # TestSetupPadded
    ("pool: AVE global_pooling: true", (2, 3, 6, 5), (1, 1)),  # TestSetupGlobalPooling
    ("kernel_size: 3 stride: 2 round_mode: FLOOR", (1, 1, 6, 5), (2, 2)),
    ("kernel_size: 3 stride: 3 pad: 1", (1, 1, 5, 5), (2, 2)),  # ceil gives 3; the 3rd starts in pad
    ("kernel_size: 2 stride: 2 pad: 1", (1, 1, 6, 7), (4, 4)),
    # Any pad turns the clip rule on for both axes: W = ceil(4/3) + 1 = 3, clipped to 2.
    ("kernel_h: 3 kernel_w: 1 stride_h: 1 stride_w: 3 pad_h: 1 pad_w: 0", (1, 1, 5, 5), (5, 2)),
    ("kernel_h: 1 kernel_w: 1 stride_h: 1 stride_w: 3", (1, 1, 5, 5), (5, 3)),  # no pad: no clip
])
def test_output_sizes(fields: str, shape: tuple[int, ...], expected: tuple[int, int]) -> None:
    _, _, top = make(fields, shape)
    assert top[0].shape == (*shape[:2], *expected)


@pytest.mark.parametrize(("fields", "message"), [
    ("global_pooling: true kernel_size: 2", "cannot be specified"),
    ("kernel_size: 2 kernel_h: 2 kernel_w: 2", "not both"),
    ("kernel_h: 2", "kernel_size OR kernel_h and kernel_w"),
    ("stride: 1", "kernel_size OR kernel_h and kernel_w"),
    ("kernel_size: 0", "cannot be zero"),
    ("kernel_size: 2 pad: 1 pad_h: 1 pad_w: 1", "pad is pad OR pad_h and pad_w"),
    ("kernel_size: 2 pad_h: 1", "pad is pad OR pad_h and pad_w"),
    ("kernel_size: 2 stride_w: 1", "stride is stride OR stride_h and stride_w"),
    ("kernel_size: 2 stride: 0", "stride must be nonzero"),
    ("global_pooling: true pad: 1", "only pad = 0 and stride = 1"),
    ("global_pooling: true stride: 2", "only pad = 0 and stride = 1"),
    ("kernel_size: 2 pad: 2", "must be smaller than kernel"),
    ("pool: STOCHASTIC kernel_size: 2 pad: 1", "GPU-only"),
    ("kernel_size: 9", "empty"),
])
def test_invalid_parameters_are_refused(fields: str, message: str) -> None:
    with pytest.raises(LayerError, match=message):
        make(fields, (1, 1, 4, 4))


def test_blob_count_and_axes_checks() -> None:
    with pytest.raises(LayerError, match="only MAX pooling has a second"):
        make("pool: AVE kernel_size: 2", (1, 1, 4, 4), tops=2)
    with pytest.raises(LayerError, match="4 axes"):
        make("kernel_size: 2", (1, 4, 4))


def test_stochastic_on_cpu_names_the_layer() -> None:
    with pytest.raises(LayerError, match=r"layer 'pool' \(Pooling\): STOCHASTIC pooling is GPU-only"):
        make("pool: STOCHASTIC kernel_size: 2", (1, 1, 4, 4))


def test_stochastic_math_train_and_test() -> None:
    """Caffe's GPU kernels: TRAIN picks where the running sum reaches u·Σ; TEST gives Σx²/Σx."""
    x = torch.tensor([[1.0, 2, 3], [4, 0, 6], [1, 1, 1]]).view(1, 1, 3, 3)
    window = pooling.PoolWindow((2, 2), (2, 2), (0, 0))
    out_hw = window.output_shape((3, 3))
    assert out_hw == (2, 2)
    test_top, index = pooling.stochastic_pool(x, window, out_hw, None)
    assert index is None
    torch.testing.assert_close(test_top[0, 0], torch.tensor([[21 / 7, 45 / 9], [2 / 2, 1.0]]))
    # Window (0, 0) holds 1, 2, 4, 0 (sum 7): u = 0.5 → threshold 3.5, reached at the 4 (index 3).
    u = torch.tensor([[0.5, 0.0], [0.99, 0.6]]).view(1, 1, 2, 2)
    top, index = pooling.stochastic_pool(x, window, out_hw, u)
    assert top[0, 0].tolist() == [[4, 3], [1, 1]]
    assert index[0, 0].tolist() == [[3, 2], [7, 8]]
    grad = pooling.scatter_to_index(torch.ones(1, 1, 2, 2), index, (3, 3))
    assert grad.view(-1).tolist() == [0, 0, 1, 1, 0, 0, 0, 1, 1]


def stochastic_reference(x: torch.Tensor, u: torch.Tensor, k: int, s: int) -> torch.Tensor:
    """Caffe's StoPoolForwardTrain loops (no padding), for comparison."""
    n, c, h, w = x.shape
    ph, pw = math.ceil((h - k) / s) + 1, math.ceil((w - k) / s) + 1
    out = torch.zeros(n, c, ph, pw, dtype=x.dtype)
    for i, j, a, b in itertools.product(range(n), range(c), range(ph), range(pw)):
        values = x[i, j, a * s: min(a * s + k, h), b * s: min(b * s + k, w)].reshape(-1)
        threshold, cumsum = u[i, j, a, b] * values.sum(), 0.0
        for v in values:
            cumsum += v
            if cumsum >= threshold:
                out[i, j, a, b] = v
                break
    return out


def test_stochastic_train_matches_caffe_loops() -> None:
    generator = torch.Generator().manual_seed(3)
    x = torch.rand(2, 2, 5, 6, generator=generator, dtype=torch.float64)
    window = pooling.PoolWindow((3, 3), (2, 2), (0, 0))
    out_hw = window.output_shape((5, 6))
    u = torch.rand(2, 2, *out_hw, generator=generator, dtype=torch.float64)
    top, _ = pooling.stochastic_pool(x, window, out_hw, u)
    torch.testing.assert_close(top, stochastic_reference(x, u, 3, 2))


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("phase", [caffe_pb2.TRAIN, caffe_pb2.TEST])
def test_stochastic_layer_on_cuda(phase: int) -> None:
    layer, bottom, top = make("pool: STOCHASTIC kernel_size: 3 stride: 2", (2, 3, 6, 5),
                              phase=phase, device="cuda")
    x = torch.rand(2, 3, 6, 5, generator=torch.Generator().manual_seed(5))
    bottom[0].data.copy_(x)
    rng.set_random_seed(1701)
    layer.run_forward(bottom, top)
    if phase == caffe_pb2.TEST:
        window = pooling.PoolWindow((3, 3), (2, 2), (0, 0))
        expected, _ = pooling.stochastic_pool(x, window, (3, 2), None)
        torch.testing.assert_close(top[0].data.cpu(), expected)
        return
    u = torch.from_numpy(rng.CaffeRNG(1701).uniform(top[0].count(), 0.0, 1.0)).view(top[0].shape)
    torch.testing.assert_close(top[0].data.cpu(), stochastic_reference(x, u, 3, 2))
    top[0].diff.fill_(1)
    layer.run_backward(top, [True], bottom)
    assert bottom[0].diff.sum().item() == top[0].count()


@pytest.mark.parametrize("fields", [
    "kernel_size: 3 stride: 2 pad: 1", "kernel_size: 2 stride: 1",
    "kernel_h: 3 kernel_w: 2 stride: 2 pad_h: 1 pad_w: 0", "kernel_size: 3 stride: 3"])
@pytest.mark.parametrize("pool", ["MAX", "AVE"])
def test_explicit_padding_path_equals_torch_kernels(fields: str, pool: str, monkeypatch) -> None:
    """Where torch's kernels apply, the general path (explicit padding) gives the same numbers."""
    x = torch.randn(2, 3, 7, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    dy = torch.randn(2, 3, 7, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    results = []
    for native in (True, False):
        if not native:
            monkeypatch.setattr(pooling.PoolWindow, "native", lambda *args: False)
        layer, bottom, top = make(f"pool: {pool} {fields}", (2, 3, 7, 6), tops=1 + (pool == "MAX"))
        assert native == layer.window.native((7, 6), layer.out_hw)
        bottom[0].data.copy_(x)
        layer.run_forward(bottom, top)
        top[0].diff.copy_(dy[..., : top[0].shape[2], : top[0].shape[3]])
        layer.run_backward(top, [True], bottom)
        results.append([t.data.clone() for t in top] + [bottom[0].diff.clone()])
    for mine, theirs in zip(*results):
        torch.testing.assert_close(mine, theirs.to(mine.dtype))
