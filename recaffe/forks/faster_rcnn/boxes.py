"""py-faster-rcnn's box arithmetic (lib/rpn/generate_anchors.py, lib/fast_rcnn/bbox_transform.py,
lib/utils/bbox.pyx, lib/nms/cpu_nms.pyx), on torch tensors: anchors, box deltas, clipping,
overlaps and a deterministic greedy NMS in place of the compiled one.

Boxes are (x1, y1, x2, y2) in pixels with inclusive corners: a box is x2 − x1 + 1 wide.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def generate_anchors(base_size: int = 16, ratios: Sequence[float] = (0.5, 1, 2),
                     scales: Sequence[float] = (8, 16, 32), opencv: bool = False) -> np.ndarray:
    """The A = len(ratios)·len(scales) reference anchors (A, 4) around the window (0, 0,
    base_size − 1, base_size − 1), ratio by ratio, each with every scale (generate_anchors.py:
    widths round(√(area/ratio)), heights round(width·ratio), halves to even as numpy rounds;
    ``opencv``: OpenCV's Proposal, floor(base_size/√ratio + 0.5) and floor(width·ratio + 0.5)
    in float32)."""
    size = float(base_size)
    center = 0.5 * (size - 1)
    anchors = []
    for ratio in ratios:
        if opencv:
            r = np.float32(ratio)
            width = float(np.floor(np.float32(base_size) / np.sqrt(r) + np.float32(0.5)))
            height = float(np.floor(np.float32(width) * r + np.float32(0.5)))
        else:
            width = float(np.round(np.sqrt(size * size / ratio)))
            height = float(np.round(width * ratio))
        for scale in scales:
            w, h = width * scale, height * scale
            anchors.append([center - 0.5 * (w - 1), center - 0.5 * (h - 1),
                            center + 0.5 * (w - 1), center + 0.5 * (h - 1)])
    return np.array(anchors, dtype=np.float64).reshape(-1, 4)


def shifted_anchors(anchors: np.ndarray, height: int, width: int, stride: float,
                    device: torch.device) -> torch.Tensor:
    """Every anchor at every cell of an height×width map, cell-major ((y, x), then anchor): the
    (height·width·A, 4) order of the proposal and anchor target layers, in float32."""
    shift_x, shift_y = np.meshgrid(np.arange(width) * stride, np.arange(height) * stride)
    shifts = np.stack([shift_x.ravel(), shift_y.ravel(), shift_x.ravel(), shift_y.ravel()], axis=1)
    every = (anchors[None, :, :] + shifts[:, None, :]).reshape(-1, 4)
    return torch.from_numpy(every.astype(np.float32)).to(device)


def bbox_transform(ex: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """The regression targets (dx, dy, dw, dh) taking boxes ``ex`` to ``gt`` (both (N, 4))."""
    ex_w, ex_h = ex[:, 2] - ex[:, 0] + 1.0, ex[:, 3] - ex[:, 1] + 1.0
    gt_w, gt_h = gt[:, 2] - gt[:, 0] + 1.0, gt[:, 3] - gt[:, 1] + 1.0
    ex_x, ex_y = ex[:, 0] + 0.5 * ex_w, ex[:, 1] + 0.5 * ex_h
    gt_x, gt_y = gt[:, 0] + 0.5 * gt_w, gt[:, 1] + 0.5 * gt_h
    return torch.stack([(gt_x - ex_x) / ex_w, (gt_y - ex_y) / ex_h,
                        torch.log(gt_w / ex_w), torch.log(gt_h / ex_h)], dim=1)


def bbox_transform_inv(boxes: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """Boxes (N, 4) moved by deltas (N, 4·k): (N, 4·k) predicted boxes, in the deltas' dtype."""
    boxes = boxes.to(deltas.dtype)
    widths = (boxes[:, 2] - boxes[:, 0] + 1.0)[:, None]
    heights = (boxes[:, 3] - boxes[:, 1] + 1.0)[:, None]
    ctr_x = boxes[:, 0, None] + 0.5 * widths
    ctr_y = boxes[:, 1, None] + 0.5 * heights
    pred_x = deltas[:, 0::4] * widths + ctr_x
    pred_y = deltas[:, 1::4] * heights + ctr_y
    pred_w = torch.exp(deltas[:, 2::4]) * widths
    pred_h = torch.exp(deltas[:, 3::4]) * heights
    out = torch.empty_like(deltas)
    out[:, 0::4] = pred_x - 0.5 * pred_w
    out[:, 1::4] = pred_y - 0.5 * pred_h
    out[:, 2::4] = pred_x + 0.5 * pred_w
    out[:, 3::4] = pred_y + 0.5 * pred_h
    return out


def clip_boxes(boxes: torch.Tensor, height: float, width: float) -> torch.Tensor:
    """Boxes (N, 4·k) clipped to the image: x into [0, width − 1], y into [0, height − 1]."""
    out = boxes.clone()
    x_max = torch.tensor(width, dtype=boxes.dtype) - 1
    y_max = torch.tensor(height, dtype=boxes.dtype) - 1
    for start, limit in ((0, x_max), (1, y_max), (2, x_max), (3, y_max)):
        out[:, start::4] = torch.clamp(torch.minimum(boxes[:, start::4], limit.to(boxes.device)), min=0)
    return out


def bbox_overlaps(boxes: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """IoU (N, K) of boxes (N, 4) with query boxes (K, 4), in float64 as utils/bbox.pyx (areas
    with the +1 of inclusive corners; 0 where they do not intersect)."""
    b, q = boxes.to(torch.float64), query.to(torch.float64)
    iw = torch.minimum(b[:, None, 2], q[None, :, 2]) - torch.maximum(b[:, None, 0], q[None, :, 0]) + 1
    ih = torch.minimum(b[:, None, 3], q[None, :, 3]) - torch.maximum(b[:, None, 1], q[None, :, 1]) + 1
    area_b = ((b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1))[:, None]
    area_q = ((q[:, 2] - q[:, 0] + 1) * (q[:, 3] - q[:, 1] + 1))[None, :]
    inter = iw * ih
    overlap = inter / (area_b + area_q - inter)
    return torch.where((iw > 0) & (ih > 0), overlap, torch.zeros_like(overlap))


def descending(scores: torch.Tensor) -> torch.Tensor:
    """numpy's ``scores.argsort()[::-1]`` made deterministic: a stable ascending sort, reversed
    (equal scores come out the later index first)."""
    return torch.flip(torch.sort(scores, stable=True).indices, dims=[0])


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, limit: int = 0) -> torch.Tensor:
    """py-faster-rcnn's cpu_nms: the indices kept, best first.

    Boxes are visited in ``descending(scores)`` order; each one not yet suppressed is kept and
    suppresses every later box whose overlap with it (float32, inclusive corners, intersection
    clamped at 0) is >= ``threshold``. ``limit`` > 0 stops after that many keeps (the same first
    ``limit`` as cutting the full result).
    """
    return greedy_nms(boxes, descending(scores), threshold, limit, suppress_equal=True, gap_overlaps=True)


def greedy_nms(boxes: torch.Tensor, order: torch.Tensor, threshold: float, limit: int, *,
               suppress_equal: bool, gap_overlaps: bool) -> torch.Tensor:
    """Greedy NMS over ``boxes[order]``: the indices (into ``boxes``) kept, in visiting order.

    ``suppress_equal``: an overlap equal to the threshold suppresses (py-faster-rcnn) or keeps
    (SSD/OpenCV). ``gap_overlaps``: boxes less than a pixel apart still overlap by the +1 of
    inclusive corners (py-faster-rcnn clamps the intersection at 0); otherwise boxes whose
    corners do not reach each other overlap by 0 (SSD/OpenCV's non-normalized Jaccard).
    """
    b = boxes[order].to(torch.float32)
    count = b.shape[0]
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    suppressed = np.zeros(count, dtype=bool)
    kept: list[int] = []
    block = 1024
    for start in range(0, count, block):
        rows = slice(start, min(start + block, count))
        gap_w = torch.minimum(x2[rows, None], x2[None, :]) - torch.maximum(x1[rows, None], x1[None, :])
        gap_h = torch.minimum(y2[rows, None], y2[None, :]) - torch.maximum(y1[rows, None], y1[None, :])
        inter = torch.clamp(gap_w + 1, min=0.0) * torch.clamp(gap_h + 1, min=0.0)
        ratio = inter / (areas[rows, None] + areas[None, :] - inter)
        if not gap_overlaps:
            ratio = torch.where((gap_w < 0) | (gap_h < 0), torch.zeros_like(ratio), ratio)
        wide = ratio.double()  # a float32 overlap against the double threshold, as in C
        over = (wide >= threshold if suppress_equal else wide > threshold).cpu().numpy()
        for i in range(rows.start, rows.stop):
            if suppressed[i]:
                continue
            kept.append(i)
            if 0 < limit <= len(kept):
                break
            later = over[i - rows.start]
            later[: i + 1] = False
            suppressed |= later
        if 0 < limit <= len(kept):
            break
    return order[torch.tensor(kept, dtype=torch.int64, device=order.device)]
