"""Fast/Faster R-CNN's ROIPooling, SmoothL1Loss and Dropout scale_train against references from the
fork's C++ (roi_pooling_layer.cpp/.cu, smooth_L1_loss_layer.cu, dropout_layer.cpp).

Golden cases from the fork's own build are still to come (../shared/tools/build-reference-caffe.sh).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from recaffe import forks, rng
from recaffe.blob import Blob
from recaffe.io import prototxt
from recaffe.layer import LayerError
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS
from recaffe.testing.gradient_check import GradientChecker
from recaffe.testing.layer_case import LayerCase, Tensors

FRCNN = forks.get_dialect("faster_rcnn")


def fork(param: caffe_pb2.LayerParameter) -> Any:
    return FRCNN.fork_param(param)


def c_round(value: float) -> int:
    return int(math.floor(abs(value) + 0.5)) * (1 if value >= 0 else -1)


def roi_bins(start: int, end: int, pooled: int, limit: int) -> list[tuple[int, int]]:
    size = np.float32(max(end - start + 1, 1))
    bin_size = size / np.float32(pooled)
    return [
        (
            min(max(math.floor(np.float32(k) * bin_size) + start, 0), limit),
            min(max(math.ceil(np.float32(k + 1) * bin_size) + start, 0), limit),
        )
        for k in range(pooled)
    ]


ROIS = [[0, 0, 0, 9, 7], [1, 3.5, 2.4, 9.6, 7.5], [1, -4, -4, 3, 2], [0, 12, 9, 40, 40], [1, 6, 6, 6, 6]]


class TestROIPooling(LayerCase):
    layer_type = "ROIPooling"
    dialect = "faster_rcnn"
    params = [
        "roi_pooling_param { pooled_h: 2 pooled_w: 2 spatial_scale: 0.5 }",
        "roi_pooling_param { pooled_h: 2 pooled_w: 4 spatial_scale: 0.25 }",
        "roi_pooling_param { pooled_h: 4 pooled_w: 3 }",
    ]
    bottom_shapes = [(2, 2, 5, 6), (len(ROIS), 5)]
    check_bottoms = [0]
    numeric_cases = params[:1]

    def test_gradient_numeric(self, case: str) -> None:
        """Caffe's exhaustive check runs two forwards per top and bottom element: one small case."""
        layer = LAYERS.get(self.layer_type, self.dialect)(self.layer_param(case), dtype=torch.float64)
        features = Blob((1, 1, 4, 5), dtype=torch.float64)
        features.data.copy_(
            torch.randn(1, 1, 4, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
        )
        rois = Blob((2, 5), dtype=torch.float64)
        rois.data.copy_(torch.tensor([[0, 0, 0, 9, 7], [0, 2, 1, 7, 6]], dtype=torch.float64))
        top = [Blob(dtype=torch.float64)]
        layer.setup([features, rois], top)
        GradientChecker(self.stepsize, self.threshold).check(layer, [features, rois], top, [0])

    def test_in_place(self, case: str) -> None:
        layer = LAYERS.get(self.layer_type, self.dialect)(self.layer_param(case))
        features = Blob((1, 1, 4, 4))
        with pytest.raises(LayerError, match="in-place"):
            layer.setup([features, Blob((1, 5))], [features])

    def make_bottoms(self, param: caffe_pb2.LayerParameter, generator: torch.Generator) -> list[torch.Tensor]:
        return [
            torch.randn(self.bottom_shapes[0], generator=generator, dtype=torch.float64),
            torch.tensor(ROIS, dtype=torch.float64),
        ]

    def reference(self, bottoms: Tensors, blobs: Tensors, param: caffe_pb2.LayerParameter) -> Tensors:
        p = fork(param).roi_pooling_param
        x, rois = bottoms
        out = []
        for image, *corners in rois.tolist():
            x1, y1, x2, y2 = (c_round(c * np.float32(p.spatial_scale)) for c in corners)
            cells = []
            for h0, h1 in roi_bins(y1, y2, p.pooled_h, x.shape[2]):
                for w0, w1 in roi_bins(x1, x2, p.pooled_w, x.shape[3]):
                    empty = h1 <= h0 or w1 <= w0
                    cells.append(
                        x.new_zeros(x.shape[1]) if empty else x[int(image), :, h0:h1, w0:w1].amax(dim=(1, 2))
                    )
            out.append(torch.stack(cells, 1).view(x.shape[1], p.pooled_h, p.pooled_w))
        return (torch.stack(out),)


class TestSmoothL1Loss(LayerCase):
    layer_type = "SmoothL1Loss"
    dialect = "faster_rcnn"
    params = ["", "smooth_l1_loss_param { sigma: 3 }"]
    bottom_shapes = [(4, 8, 2, 3), (4, 8, 2, 3)]
    check_bottoms = [0, 1]
    kink, kink_range = 1.0, 0.02

    def reference(self, bottoms: Tensors, blobs: Tensors, param: caffe_pb2.LayerParameter) -> Tensors:
        sigma2 = fork(param).smooth_l1_loss_param.sigma ** 2
        d = bottoms[0] - bottoms[1]
        if len(bottoms) == 4:
            d = d * bottoms[2]
        errors = torch.where(d.abs() < 1 / sigma2, 0.5 * d * d * sigma2, d.abs() - 0.5 / sigma2)
        if len(bottoms) == 4:
            errors = errors * bottoms[3]
        return (errors.sum() / bottoms[0].shape[0],)


class TestSmoothL1LossWeighted(TestSmoothL1Loss):
    params = ["smooth_l1_loss_param { sigma: 3 }"]
    bottom_shapes = [(4, 8, 2, 3)] * 4

    def make_bottoms(self, param: caffe_pb2.LayerParameter, generator: torch.Generator) -> list[torch.Tensor]:
        x, t, w_in, w_out = (
            torch.randn(s, generator=generator, dtype=torch.float64) for s in self.bottom_shapes
        )
        return [x, t, (w_in > 0).double(), w_out.abs()]


def run_dropout(snippet: str, phase: int, x: torch.Tensor) -> tuple[Any, Blob, Blob]:
    text = f'name: "d" type: "Dropout" {snippet}'
    param = FRCNN.lower_layer(prototxt.parse_text(text, FRCNN.layer_parameter()))
    param.phase = phase
    layer = LAYERS.get("Dropout", "faster_rcnn")(param, dtype=x.dtype)
    bottom, top = Blob(x.shape, dtype=x.dtype), Blob(dtype=x.dtype)
    bottom.data.copy_(x)
    rng.set_random_seed(7)
    layer.setup([bottom], [top])
    layer.run_forward([bottom], [top])
    top.diff.copy_(torch.linspace(-1, 1, x.numel(), dtype=x.dtype).view(x.shape))
    layer.run_backward([top], [True], [bottom])
    return layer, bottom, top


@pytest.mark.parametrize("phase", [caffe_pb2.TRAIN, caffe_pb2.TEST])
def test_dropout_scale_train(phase: int) -> None:
    x = torch.randn(3, 50, generator=torch.Generator().manual_seed(1))
    bvlc_param = prototxt.parse_text(
        'name: "d" type: "Dropout" dropout_param { dropout_ratio: 0.3 }', caffe_pb2.LayerParameter()
    )
    bvlc_param.phase = phase
    bvlc = LAYERS.get("Dropout")(bvlc_param)
    b, t = Blob(x.shape), Blob()
    b.data.copy_(x)
    rng.set_random_seed(7)
    bvlc.setup([b], [t])
    bvlc.run_forward([b], [t])
    _, _, same = run_dropout("dropout_param { dropout_ratio: 0.3 }", phase, x)
    assert torch.equal(same.data, t.data)  # scale_train: true is BVLC's, bit for bit
    layer, bottom, top = run_dropout("dropout_param { dropout_ratio: 0.3 scale_train: false }", phase, x)
    factor = layer.mask if phase == caffe_pb2.TRAIN else torch.full_like(x, 1 / (1 / np.float32(0.7)))
    torch.testing.assert_close(top.data, x * factor)
    torch.testing.assert_close(bottom.diff, top.diff * factor)


def test_roi_pooling_errors() -> None:
    text = 'name: "r" type: "ROIPooling" roi_pooling_param { pooled_h: 0 pooled_w: 2 }'
    layer = LAYERS.get("ROIPooling", "faster_rcnn")(
        FRCNN.lower_layer(prototxt.parse_text(text, FRCNN.layer_parameter()))
    )
    with pytest.raises(LayerError, match="must be > 0"):
        layer.setup([Blob((1, 1, 4, 4)), Blob((1, 5))], [Blob()])
