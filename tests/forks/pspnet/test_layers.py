"""PSPNet's BN and Interp against references from the fork's C++ (bn_layer.cpp, interp.cpp).

Golden cases from the fork's own build are still to come (../shared/tools/build-reference-caffe.sh).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from recaffe import forks
from recaffe.blob import Blob
from recaffe.forks.pspnet import interp
from recaffe.io import prototxt
from recaffe.layer import LayerError
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS
from recaffe.testing.layer_case import LayerCase, Tensors

PSP = forks.get_dialect("pspnet")


def fork(param: caffe_pb2.LayerParameter) -> Any:
    return PSP.fork_param(param)


def build(layer_type: str, snippet: str, x: torch.Tensor, phase: int = caffe_pb2.TEST) -> tuple[Any, Blob]:
    param = PSP.lower_layer(
        prototxt.parse_text(f'name: "L" type: "{layer_type}" {snippet}', PSP.layer_parameter())
    )
    param.phase = phase
    layer = LAYERS.get(layer_type, "pspnet")(param, dtype=x.dtype)
    bottom, top = [Blob(x.shape, dtype=x.dtype)], [Blob(dtype=x.dtype)]
    bottom[0].data.copy_(x)
    layer.setup(bottom, top)
    layer.run_forward(bottom, top)
    return layer, top[0]


FILLERS = 'slope_filler { type: "gaussian" mean: 1 std: 0.3 } bias_filler { type: "gaussian" std: 0.5 }'


class TestBNBatchStatistics(LayerCase):
    layer_type = "BN"
    dialect = "pspnet"
    params = [f"bn_param {{ {FILLERS} }}", f"bn_param {{ {FILLERS} eps: 0.1 momentum: 0.5 }}"]
    bottom_shapes = [(3, 4, 2, 3)]
    in_place = True

    def reference(self, bottoms: Tensors, blobs: Tensors, param: caffe_pb2.LayerParameter) -> Tensors:
        (x,), (slope, bias, _, _) = bottoms, blobs
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = (x - mean).square().mean(dim=(0, 2, 3), keepdim=True)
        return (
            slope.view(1, -1, 1, 1) * (x - mean) / torch.sqrt(var + fork(param).bn_param.eps)
            + bias.view(1, -1, 1, 1),
        )


class TestBNRunningStatistics(LayerCase):
    layer_type = "BN"
    dialect = "pspnet"
    # Only frozen: not frozen, the fork back-propagates the batch formula through the x̂ of the running
    # statistics even in TEST, which is not this forward's gradient; the fork's golden case
    # tests/forks/golden/pspnet/bn_test checks that mode (forward and backward).
    params = [f"bn_param {{ {FILLERS} eps: 0.5 frozen: true }}"]
    phase = caffe_pb2.TEST
    bottom_shapes = [(2, 3, 4, 5)]
    in_place = True

    def reference(self, bottoms: Tensors, blobs: Tensors, param: caffe_pb2.LayerParameter) -> Tensors:
        (x,), (slope, bias, mean, var) = bottoms, blobs
        view = [b.view(1, -1, 1, 1) for b in (slope, bias, mean, var)]
        return (view[0] * (x - view[2]) / torch.sqrt(view[3] + fork(param).bn_param.eps) + view[1],)


def test_bn_updates_running_statistics_in_train_only() -> None:
    x = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    layer, _ = build("BN", "bn_param { momentum: 0.75 }", x, caffe_pb2.TRAIN)
    torch.testing.assert_close(layer.blobs[2].data.view(-1), 0.25 * x.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(layer.blobs[3].data.view(-1), 0.25 * x.var(dim=(0, 2, 3), unbiased=False))
    assert [b.shape for b in layer.blobs] == [(1, 3, 1, 1)] * 4
    frozen, _ = build("BN", "bn_param { frozen: true }", x, caffe_pb2.TRAIN)
    assert not frozen.blobs[2].data.any() and frozen.param_propagate_down == [False] * 4
    tested, _ = build("BN", "", x, caffe_pb2.TEST)
    assert not tested.blobs[2].data.any()


def reference_interp(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """interp.cpp caffe_cpu_interp2: corner-aligned bilinear (the fork's float taps)."""
    (r, rp, rl), (c, cp, cl) = interp.taps(x.shape[2], size[0]), interp.taps(x.shape[3], size[1])
    rl, cl = rl.to(x.dtype).view(-1, 1), cl.to(x.dtype).view(1, -1)
    r, r2, c, c2 = r.view(-1, 1), (r + rp).view(-1, 1), c.view(1, -1), (c + cp).view(1, -1)
    return (1 - rl) * ((1 - cl) * x[:, :, r, c] + cl * x[:, :, r, c2]) + rl * (
        (1 - cl) * x[:, :, r2, c] + cl * x[:, :, r2, c2]
    )


class TestInterp(LayerCase):
    layer_type = "Interp"
    dialect = "pspnet"
    params = [
        "interp_param { zoom_factor: 3 }",
        "interp_param { shrink_factor: 2 }",
        "interp_param { height: 7 width: 4 }",
        "interp_param { zoom_factor: 2 pad_beg: -1 pad_end: -1 }",
        "interp_param { shrink_factor: 2 zoom_factor: 2 }",
        "interp_param { height: 5 width: 6 }",
        "interp_param { height: 1 width: 1 }",
    ]
    bottom_shapes = [(2, 3, 5, 6)]

    def reference(self, bottoms: Tensors, blobs: Tensors, param: caffe_pb2.LayerParameter) -> Tensors:
        p = fork(param).interp_param
        x = bottoms[0]
        if p.pad_beg or p.pad_end:
            x = x[:, :, -p.pad_beg : x.shape[2] + p.pad_end, -p.pad_beg : x.shape[3] + p.pad_end]

        def out(n: int) -> int:
            n = (n - 1) // p.shrink_factor + 1 if p.HasField("shrink_factor") else n
            return n + (n - 1) * (p.zoom_factor - 1) if p.HasField("zoom_factor") else n

        size = (p.height, p.width) if p.HasField("height") else (out(x.shape[2]), out(x.shape[3]))
        return (x if size == tuple(x.shape[2:]) else reference_interp(x, size),)


def test_interp_is_corner_aligned_bilinear() -> None:
    x = torch.randn(1, 2, 6, 9, generator=torch.Generator().manual_seed(4))
    _, top = build("Interp", "interp_param { zoom_factor: 8 }", x)
    assert top.shape == (1, 2, 41, 65)
    want = F.interpolate(x.double(), size=(41, 65), mode="bilinear", align_corners=True)
    torch.testing.assert_close(top.data.double(), want, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("", "needs zoom_factor"),
        ("interp_param { zoom_factor: 2 height: 3 width: 3 }", "one way"),
        ("interp_param { zoom_factor: 0 }", ">= 1"),
        ("interp_param { zoom_factor: 2 pad_beg: 1 }", "<= 0"),
    ],
)
def test_interp_errors(snippet: str, message: str) -> None:
    with pytest.raises(LayerError, match=message):
        build("Interp", snippet, torch.zeros(1, 1, 3, 3))


def test_pspnet_prototxt_reads_in_its_dialect(tmp_path: Any) -> None:
    path = tmp_path / "psp.prototxt"
    path.write_text(
        'input: "data" input_dim: 1 input_dim: 2 input_dim: 4 input_dim: 4\n'
        'layer { name: "bn" type: "BN" bottom: "data" top: "bn" bn_param { frozen: true } }\n'
        'layer { name: "up" type: "Interp" bottom: "bn" top: "up" interp_param { zoom_factor: 2 } }\n'
    )
    import recaffe

    net = recaffe.Net(str(path), recaffe.TEST)
    assert net.blobs["up"].shape == (1, 2, 7, 7)
