"""SSD's deploy layers against references written from the fork's C++ (weiliu89/caffe, ssd branch).

Golden cases from the fork's own build are still to come (../shared/tools/build-reference-caffe.sh);
the references here follow permute_layer.cpp, normalize_layer.cpp, prior_box_layer.cpp,
detection_output_layer.cpp and util/bbox_util.cpp line by line, in plain Python.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch

from recaffe import forks
from recaffe.blob import Blob
from recaffe.io import prototxt
from recaffe.layer import LayerError
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS
from recaffe.testing.layer_case import LayerCase, Tensors

SSD = forks.get_dialect("ssd")


def fork(param: caffe_pb2.LayerParameter) -> Any:
    return SSD.fork_param(param)


def build_and_run(layer_type: str, snippet: str, bottoms: Sequence[torch.Tensor],
                  name: str = "L") -> tuple[Any, list[Blob], list[Blob]]:
    """An SSD-dialect layer set up on blobs holding ``bottoms`` and run forward once: the layer,
    its bottoms, its (one) top."""
    text = f'name: "{name}" type: "{layer_type}" {snippet}'
    param = SSD.lower_layer(prototxt.parse_text(text, SSD.layer_parameter()))
    layer = LAYERS.get(layer_type, "ssd")(param)
    bottom = [Blob(b.shape) for b in bottoms]
    for blob, data in zip(bottom, bottoms):
        blob.data.copy_(data)
    top = [Blob()]
    layer.setup(bottom, top)
    layer.run_forward(bottom, top)
    return layer, bottom, top


def build(layer_type: str, snippet: str, bottoms: Sequence[torch.Tensor]) -> tuple[Any, list[Blob]]:
    layer, _, top = build_and_run(layer_type, snippet, bottoms)
    return layer, top


class TestPermute(LayerCase):
    layer_type = "Permute"
    dialect = "ssd"
    params = [
        "permute_param { order: 0 order: 2 order: 3 order: 1 }",
        "permute_param { order: 3 order: 1 }",
        "",
    ]
    bottom_shapes = [(2, 3, 4, 5)]

    def reference(self, bottoms: Tensors, blobs: Tensors, param: caffe_pb2.LayerParameter) -> Tensors:
        given = list(fork(param).permute_param.order)
        return (bottoms[0].permute(given + [a for a in range(4) if a not in given]),)


class TestNormalize(LayerCase):
    layer_type = "Normalize"
    dialect = "ssd"
    # one shared scale: the fork's backward is the exact gradient (per channel, see below)
    params = [
        "",
        'norm_param { across_spatial: false scale_filler { type: "constant" value: 3 } }',
        "norm_param { eps: 0.01 }",
    ]
    bottom_shapes = [(2, 3, 4, 5)]

    def reference(self, bottoms: Tensors, blobs: Tensors, param: caffe_pb2.LayerParameter) -> Tensors:
        p = fork(param).norm_param
        (x,), (scale,) = bottoms, blobs
        dims = (1, 2, 3) if p.across_spatial else (1,)
        norm = torch.sqrt(x.square().sum(dim=dims, keepdim=True) + p.eps)
        return (x / norm * scale.view(1, -1, 1, 1),)


@pytest.mark.parametrize("across_spatial", [True, False])
def test_normalize_per_channel_backward_is_the_forks(across_spatial: bool) -> None:
    """With one scale per channel the fork scales dx by s_c after the normalization's gradient of
    the raw dy (normalize_layer.cpp), which is not the exact gradient of y; recaffe keeps the fork's."""
    g = torch.Generator().manual_seed(5)
    x, dy = (
        torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64),
        torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64),
    )
    snippet = (
        f"norm_param {{ across_spatial: {str(across_spatial).lower()} channel_shared: false "
        f'scale_filler {{ type: "gaussian" mean: 20 std: 2 }} }}'
    )
    text = f'name: "L" type: "Normalize" {snippet}'
    layer = LAYERS.get("Normalize", "ssd")(
        SSD.lower_layer(prototxt.parse_text(text, SSD.layer_parameter())), dtype=torch.float64
    )
    bottom, top = [Blob(x.shape, dtype=torch.float64)], [Blob(dtype=torch.float64)]
    bottom[0].data.copy_(x)
    layer.setup(bottom, top)
    layer.run_forward(bottom, top)
    top[0].diff.copy_(dy)
    layer.run_backward(top, [True], bottom)
    s = layer.blobs[0].data.view(1, 3, 1, 1)
    dims = (1, 2, 3) if across_spatial else (1,)
    norm = torch.sqrt(x.square().sum(dims, keepdim=True) + 1e-10)
    torch.testing.assert_close(top[0].data, x / norm * s)
    want_dx = s * (dy - x * (x * dy).sum(dims, keepdim=True) / norm.square()) / norm
    torch.testing.assert_close(bottom[0].diff, want_dx)
    torch.testing.assert_close(layer.blobs[0].diff, (top[0].data * dy).sum((0, 2, 3)) / s.view(-1))


def prior_boxes_reference(layer_hw: tuple[int, int], image_hw: tuple[int, int], p: Any) -> np.ndarray:
    """prior_box_layer.cpp Forward_cpu, loop for loop (float32 where the fork has float)."""
    f = np.float32
    aspect = [1.0]
    for ratio in p.aspect_ratio:
        if any(abs(ratio - a) < 1e-6 for a in aspect):
            continue
        aspect.append(ratio)
        if p.flip:
            aspect.append(1.0 / ratio)
    layer_h, layer_w = layer_hw
    img_h = p.img_h or p.img_size or image_hw[0]
    img_w = p.img_w or p.img_size or image_hw[1]
    step_h = f(p.step_h or p.step) if (p.step_h or p.step) else f(img_h) / f(layer_h)
    step_w = f(p.step_w or p.step) if (p.step_w or p.step) else f(img_w) / f(layer_w)
    out: list[float] = []
    for h in range(layer_h):
        for w in range(layer_w):
            cx, cy = (f(w) + f(p.offset)) * step_w, (f(h) + f(p.offset)) * step_h

            def put(bw: np.float32, bh: np.float32, cx: np.float32 = cx, cy: np.float32 = cy) -> None:
                out.extend(
                    [
                        (float(cx) - float(bw) / 2.0) / img_w,
                        (float(cy) - float(bh) / 2.0) / img_h,
                        (float(cx) + float(bw) / 2.0) / img_w,
                        (float(cy) + float(bh) / 2.0) / img_h,
                    ]
                )

            for s, size in enumerate(p.min_size):
                put(f(size), f(size))
                if p.max_size:
                    side = np.sqrt(f(size) * f(p.max_size[s]))
                    put(side, side)
                for ratio in aspect:
                    if abs(ratio - 1.0) < 1e-6:
                        continue
                    root = np.sqrt(f(ratio))
                    put(f(size) * root, f(size) / root)
    boxes = np.asarray(out, dtype=np.float32)
    if p.clip:
        boxes = np.clip(boxes, 0, 1)
    variance = list(p.variance) or [0.1]
    variance = variance * 4 if len(variance) == 1 else variance
    return np.stack([boxes, np.tile(np.asarray(variance, dtype=np.float32), len(boxes) // 4)])[None]


PRIOR_PARAMS = [
    "prior_box_param { min_size: 30 max_size: 60 aspect_ratio: 2 flip: true variance: 0.1 variance: 0.1 "
    "variance: 0.2 variance: 0.2 }",
    "prior_box_param { min_size: 10 min_size: 21 max_size: 25 max_size: 33 aspect_ratio: 2 aspect_ratio: 3 "
    "aspect_ratio: 2 flip: false clip: true step: 8 offset: 0.25 }",
    "prior_box_param { min_size: 7 img_h: 50 img_w: 70 step_h: 9 step_w: 11 variance: 0.3 "
    "aspect_ratio: 0.5 }",
    "prior_box_param { min_size: 60 img_size: 300 clip: true }",
]


@pytest.mark.parametrize("snippet", PRIOR_PARAMS)
def test_prior_box_matches_the_forks_loops(snippet: str) -> None:
    feature, image = torch.zeros(2, 4, 5, 6), torch.zeros(2, 3, 37, 45)
    layer, (top,) = build("PriorBox", snippet, [feature, image])
    want = prior_boxes_reference((5, 6), (37, 45), fork(layer.param).prior_box_param)
    assert top.shape == want.shape
    np.testing.assert_allclose(top.data.numpy(), want, rtol=0, atol=1e-7)


def test_prior_box_by_hand() -> None:
    snippet = "prior_box_param { min_size: 30 max_size: 60 aspect_ratio: 2 flip: false }"
    _, (top,) = build("PriorBox", snippet, [torch.zeros(1, 1, 1, 1), torch.zeros(1, 3, 100, 100)])
    side, w, h = math.sqrt(1800) / 200, 30 * math.sqrt(2) / 200, 30 / math.sqrt(2) / 200
    want = [
        0.35,
        0.35,
        0.65,
        0.65,
        0.5 - side,
        0.5 - side,
        0.5 + side,
        0.5 + side,
        0.5 - w,
        0.5 - h,
        0.5 + w,
        0.5 + h,
    ]
    np.testing.assert_allclose(top.data[0, 0].numpy(), want, atol=1e-7)
    assert top.data[0, 1].tolist() == pytest.approx([0.1] * 12)


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("prior_box_param { aspect_ratio: 2 }", "min_size must be given"),
        ("prior_box_param { min_size: 5 max_size: 4 }", "must exceed its min_size"),
        ("prior_box_param { min_size: 5 variance: 0.1 variance: 0.2 }", "1 or 4 values"),
        ("prior_box_param { min_size: 5 step: 3 step_h: 2 }", "either step or step_h/step_w"),
    ],
)
def test_prior_box_errors(snippet: str, message: str) -> None:
    with pytest.raises(LayerError, match=message):
        build("PriorBox", snippet, [torch.zeros(1, 1, 2, 2), torch.zeros(1, 3, 8, 8)])


def test_permute_errors() -> None:
    with pytest.raises(LayerError, match="names an axis twice"):
        build("Permute", "permute_param { order: 1 order: 1 }", [torch.zeros(1, 2, 3)])
    with pytest.raises(LayerError, match="not an axis"):
        build("Permute", "permute_param { order: 4 }", [torch.zeros(1, 2, 3)])


# ----------------------------------------------------------------- DetectionOutput
def decode_reference(
    prior: list[float], var: list[float], loc: list[float], code: int, encoded: bool
) -> list[float]:
    """bbox_util.cpp DecodeBBox, float by float."""
    f = np.float32
    prior, loc = [f(v) for v in prior], [f(v) for v in loc]
    var = [f(1)] * 4 if encoded else [f(v) for v in var]
    if code == 1:  # CORNER
        return [float(prior[k] + var[k] * loc[k]) for k in range(4)]
    pw, ph = prior[2] - prior[0], prior[3] - prior[1]
    if code == 3:  # CORNER_SIZE
        size = [pw, ph, pw, ph]
        return [float(prior[k] + var[k] * loc[k] * size[k]) for k in range(4)]
    pcx, pcy = (prior[0] + prior[2]) / f(2), (prior[1] + prior[3]) / f(2)
    cx, cy = var[0] * loc[0] * pw + pcx, var[1] * loc[1] * ph + pcy
    w, h = np.exp(var[2] * loc[2]) * pw, np.exp(var[3] * loc[3]) * ph
    return [float(cx - w / f(2)), float(cy - h / f(2)), float(cx + w / f(2)), float(cy + h / f(2))]


def jaccard_reference(a: list[float], b: list[float]) -> float:
    if b[0] > a[2] or b[2] < a[0] or b[1] > a[3] or b[3] < a[1]:
        return 0.0
    iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])

    def size(x: list[float]) -> float:
        return 0.0 if x[2] < x[0] or x[3] < x[1] else (x[2] - x[0]) * (x[3] - x[1])

    return iw * ih / (size(a) + size(b) - iw * ih)


def detection_reference(
    loc: torch.Tensor, conf: torch.Tensor, prior: torch.Tensor, p: Any
) -> list[list[float]]:
    """detection_output_layer.cpp Forward_cpu with ApplyNMSFast, for lists of Python floats."""
    num, priors = loc.shape[0], prior.shape[2] // 4
    loc_classes = 1 if p.share_location else p.num_classes
    threshold = p.confidence_threshold if p.HasField("confidence_threshold") else -3.4e38
    top_k = p.nms_param.top_k if p.nms_param.HasField("top_k") else -1
    rows = []
    for n in range(num):
        l_, c_ = loc[n].view(priors, loc_classes, 4), conf[n].view(priors, p.num_classes)
        boxes = {
            c: [
                decode_reference(
                    prior[0, 0, 4 * i : 4 * i + 4].tolist(),
                    prior[0, 1, 4 * i : 4 * i + 4].tolist(),
                    l_[i, c].tolist(),
                    p.code_type,
                    p.variance_encoded_in_target,
                )
                for i in range(priors)
            ]
            for c in range(loc_classes)
        }
        kept: dict[int, list[int]] = {}
        for c in range(p.num_classes):
            if c == p.background_label_id:
                continue
            bb = boxes[0 if p.share_location else c]
            cand = sorted(
                [(float(c_[i, c]), i) for i in range(priors) if float(c_[i, c]) > threshold],
                key=lambda s: -s[0],
            )
            cand = cand[:top_k] if -1 < top_k < len(cand) else cand
            out: list[int] = []
            adaptive = p.nms_param.nms_threshold
            for _, i in cand:
                if all(jaccard_reference(bb[i], bb[j]) <= adaptive for j in out):
                    out.append(i)
                    if p.nms_param.eta < 1 and adaptive > 0.5:
                        adaptive *= p.nms_param.eta
            kept[c] = out
        if p.keep_top_k > -1 and sum(len(v) for v in kept.values()) > p.keep_top_k:
            pairs = sorted(
                [(float(c_[i, c]), c, i) for c, ids in kept.items() for i in ids], key=lambda s: -s[0]
            )
            kept = {}
            for _, c, i in pairs[: p.keep_top_k]:
                kept.setdefault(c, []).append(i)
        for c in sorted(kept):
            for i in kept[c]:
                rows.append([n, c, float(c_[i, c]), *boxes[0 if p.share_location else c][i]])
    return rows or [[n, -1, -1, -1, -1, -1, -1] for n in range(num)]


def detection_inputs(num: int, priors: int, classes: int, loc_classes: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(priors, 2, generator=g) * 0.8 + 0.1
    size = torch.rand(priors, 2, generator=g) * 0.3 + 0.05
    boxes = torch.cat([centre - size / 2, centre + size / 2], 1)
    prior = torch.stack([boxes.reshape(-1), torch.tensor([0.1, 0.1, 0.2, 0.2]).repeat(priors)])[None]
    loc = torch.randn(num, priors * loc_classes * 4, generator=g) * 0.5
    conf = torch.softmax(torch.randn(num, priors, classes, generator=g) * 3, -1).reshape(num, -1)
    return [loc, conf, prior]


DETECTION_CASES = [
    "num_classes: 4 nms_param { nms_threshold: 0.45 top_k: 30 } code_type: CENTER_SIZE keep_top_k: 12 "
    "confidence_threshold: 0.05",
    "num_classes: 3 share_location: false background_label_id: 2 nms_param { nms_threshold: 0.3 } "
    "code_type: CORNER confidence_threshold: 0.2",
    "num_classes: 3 nms_param { nms_threshold: 0.7 eta: 0.8 } code_type: CORNER_SIZE "
    "variance_encoded_in_target: true",
    "num_classes: 5 background_label_id: -1 nms_param { nms_threshold: 0.5 top_k: 5 } code_type: CENTER_SIZE "
    "keep_top_k: 7",
]


@pytest.mark.parametrize("case", DETECTION_CASES)
def test_detection_output_matches_the_forks_algorithm(case: str) -> None:
    p = prototxt.parse_text(case, SSD.pb2.DetectionOutputParameter())
    bottoms = detection_inputs(2, 40, p.num_classes, 1 if p.share_location else p.num_classes, seed=len(case))
    _, (top,) = build("DetectionOutput", f"detection_output_param {{ {case} }}", bottoms)
    want = detection_reference(*bottoms, p)
    assert top.shape == (1, 1, len(want), 7)
    np.testing.assert_allclose(top.data[0, 0].numpy(), np.asarray(want, dtype=np.float32), rtol=0, atol=2e-7)


def test_detection_output_without_detections_gives_one_row_per_image() -> None:
    bottoms = detection_inputs(3, 10, 2, 1, seed=1)
    case = "detection_output_param { num_classes: 2 confidence_threshold: 1.0 }"
    _, (top,) = build("DetectionOutput", case, bottoms)
    assert top.data.view(-1, 7).tolist() == [[n, -1, -1, -1, -1, -1, -1] for n in range(3)]


@pytest.mark.parametrize(
    ("case", "shapes", "message"),
    [
        ("", [(1, 16), (1, 8), (1, 2, 16)], "num_classes must be given"),
        ("num_classes: 2", [(1, 12), (1, 8), (1, 2, 16)], "loc \\(bottom 0\\) has 12 values"),
        ("num_classes: 3", [(1, 16), (1, 8), (1, 2, 16)], "conf \\(bottom 1\\) has 8 values"),
        ("num_classes: 2", [(1, 16), (1, 8), (1, 16)], "priors \\(bottom 2\\) must be"),
        ("num_classes: 2 nms_param { eta: 0 }", [(1, 16), (1, 8), (1, 2, 16)], "eta must be in"),
    ],
)
def test_detection_output_errors(case: str, shapes: list[tuple[int, ...]], message: str) -> None:
    with pytest.raises(LayerError, match=message):
        build("DetectionOutput", f"detection_output_param {{ {case} }}", [torch.zeros(s) for s in shapes])
