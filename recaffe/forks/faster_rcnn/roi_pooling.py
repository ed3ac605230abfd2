from __future__ import annotations

import math
from collections.abc import Sequence
from typing import final

import torch

from recaffe import forks
from recaffe.layer import Blobs, Layer
from recaffe.layers.vision.shapes import require_4d
from recaffe.registry import LAYERS


def round_half_away(value: float) -> int:
    """C's round(): halves go away from zero."""
    return int(math.floor(abs(value) + 0.5)) * (1 if value >= 0 else -1)


@LAYERS.register("ROIPooling", dialect="faster_rcnn")
@final
class ROIPoolingLayer(Layer):
    """Fast R-CNN's ROIPooling (roi_pooling_layer.cpp): max pooling of each region to a fixed grid.

    Forward: for ROI (b, x1, y1, x2, y2), corners round(coordinate · spatial_scale) (C's round);
        size max(end − start + 1, 1); bin (ph, pw) covers rows [floor(ph·h/PH), ceil((ph+1)·h/PH))
        (bin sizes in float) shifted by the start and clipped to the map, columns alike; the top
        is the bin's maximum of image b (the first in row-major order on ties), 0 for an empty bin.
    Backward: each top diff goes to the position of its maximum (summed over ROIs and bins; the
        fork's GPU backward — its CPU one is not implemented); no gradient to the ROIs: when the
        net asks for one (rois computed from learned blobs, as in py-faster-rcnn's end-to-end
        train.prototxt) their diff is left as it is, as the fork's backward does.
    Params (roi_pooling_param): pooled_h, pooled_w (> 0), spatial_scale=1.
    Bottoms: features (N×C×H×W), rois (R×5: image index, x1, y1, x2, y2, in image pixels).
    Tops: pooled (R×C×pooled_h×pooled_w).
    Malformed ROIs (a rounded end before its start) pool the 1×1 region at their start and, as in
        the fork's GPU backward, pass no gradient.
    In place: no.
    """

    exact_num_bottom_blobs = 2
    exact_num_top_blobs = 1
    supports_in_place = False

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = forks.get_dialect("faster_rcnn").fork_param(self.param).roi_pooling_param
        if p.pooled_h <= 0 or p.pooled_w <= 0:
            raise self.error("roi_pooling_param.pooled_h and pooled_w must be > 0")
        self.pooled = (p.pooled_h, p.pooled_w)
        self.spatial_scale = p.spatial_scale
        self.argmax: torch.Tensor | None = None
        self.passes_gradient = torch.ones(0, dtype=torch.bool)

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        require_4d(self, bottom[0])
        if bottom[1].num_axes < 2 or bottom[1].count(1) != 5:
            raise self.error(f"rois (bottom 1) must be R×5 (image, x1, y1, x2, y2), "
                             f"got shape {bottom[1].shape}")
        top[0].reshape(bottom[1].shape[0], bottom[0].shape[1], *self.pooled)

    def _bins(self, start: int, end: int, pooled: int, limit: int) -> list[tuple[int, int]]:
        size = max(end - start + 1, 1)
        bin_size = torch.tensor(float(size), dtype=torch.float32) / pooled  # the fork's Dtype arithmetic
        out = []
        for k in range(pooled):
            low = math.floor(float(torch.tensor(float(k), dtype=torch.float32) * bin_size))
            high = math.ceil(float(torch.tensor(float(k + 1), dtype=torch.float32) * bin_size))
            out.append((min(max(low + start, 0), limit), min(max(high + start, 0), limit)))
        return out

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        features, rois = bottom[0].data, bottom[1].data.reshape(-1, 5).tolist()
        n, channels, height, width = features.shape
        out = top[0].data
        argmax = torch.full(out.shape, -1, dtype=torch.int64, device=out.device)
        self.passes_gradient = torch.ones(len(rois), dtype=torch.bool, device=out.device)
        for r, (image, *corners) in enumerate(rois):
            b = int(image)
            if not 0 <= b < n:
                raise self.error(f"roi {r} names image {image:g}, outside [0, {n})")
            x1, y1, x2, y2 = (round_half_away(c * self.spatial_scale) for c in corners)
            self.passes_gradient[r] = x2 >= x1 and y2 >= y1  # the GPU backward's test (h, w) in the ROI
            rows = self._bins(y1, y2, self.pooled[0], height)
            cols = self._bins(x1, x2, self.pooled[1], width)
            for ph, (h0, h1) in enumerate(rows):
                for pw, (w0, w1) in enumerate(cols):
                    if h1 <= h0 or w1 <= w0:
                        out[r, :, ph, pw] = 0
                        continue
                    region = features[b, :, h0:h1, w0:w1].reshape(channels, -1)
                    value, where = region.max(dim=1)
                    out[r, :, ph, pw] = value
                    argmax[r, :, ph, pw] = (h0 + where // (w1 - w0)) * width + w0 + where % (w1 - w0)
        self.argmax = argmax

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        argmax = self.from_forward(self.argmax, "the positions of the maxima")
        n, channels, height, width = bottom[0].shape
        images = bottom[1].data.reshape(-1, 5)[:, 0].long()
        dx = bottom[0].diff
        dx.zero_()
        flat = dx.view(n * channels, height * width)
        rows = (images.view(-1, 1) * channels + torch.arange(channels, device=dx.device)).view(-1, 1, 1)
        rows = rows.expand(argmax.shape[0] * channels, *self.pooled).reshape(-1)
        where = argmax.reshape(-1)
        keep = (where >= 0) & self.passes_gradient.view(-1, 1, 1, 1).expand(argmax.shape).reshape(-1)
        flat.index_put_((rows[keep], where[keep]), top[0].diff.reshape(-1)[keep], accumulate=True)

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index == 0
