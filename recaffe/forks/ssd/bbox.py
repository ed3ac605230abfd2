"""SSD's box arithmetic (the fork's util/bbox_util.cpp): decoding predicted offsets against
prior boxes, Jaccard overlap of normalized boxes, and its greedy NMS with adaptive threshold."""

from __future__ import annotations

import torch

CORNER, CENTER_SIZE, CORNER_SIZE = 1, 2, 3  # PriorBoxParameter.CodeType


def decode(priors: torch.Tensor, variances: torch.Tensor, loc: torch.Tensor, code_type: int,
           variance_encoded_in_target: bool) -> torch.Tensor:
    """Boxes (…, 4: xmin, ymin, xmax, ymax) from predictions ``loc`` against ``priors`` (P, 4)."""
    var = torch.ones_like(variances) if variance_encoded_in_target else variances
    if code_type == CORNER:
        return priors + var * loc
    width = priors[:, 2] - priors[:, 0]
    height = priors[:, 3] - priors[:, 1]
    if code_type == CORNER_SIZE:
        size = torch.stack([width, height, width, height], -1)
        return priors + var * loc * size
    if code_type != CENTER_SIZE:
        raise ValueError(f"unknown code_type {code_type}")
    cx = var[:, 0] * loc[..., 0] * width + (priors[:, 0] + priors[:, 2]) / 2
    cy = var[:, 1] * loc[..., 1] * height + (priors[:, 1] + priors[:, 3]) / 2
    w = torch.exp(var[:, 2] * loc[..., 2]) * width
    h = torch.exp(var[:, 3] * loc[..., 3]) * height
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def box_size(boxes: torch.Tensor) -> torch.Tensor:
    """Areas of normalized boxes; 0 for a box whose max corner lies before its min corner."""
    w, h = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    return torch.where((w < 0) | (h < 0), torch.zeros_like(w), w * h)


def jaccard(box: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """Jaccard overlap of one box (4,) with each of ``others`` (K, 4); 0 for disjoint boxes."""
    disjoint = ((others[:, 0] > box[2]) | (others[:, 2] < box[0])
                | (others[:, 1] > box[3]) | (others[:, 3] < box[1]))
    iw = torch.minimum(others[:, 2], box[2]) - torch.maximum(others[:, 0], box[0])
    ih = torch.minimum(others[:, 3], box[3]) - torch.maximum(others[:, 1], box[1])
    inter = iw * ih
    overlap = inter / (box_size(box) + box_size(others) - inter)
    return torch.where(disjoint, torch.zeros_like(overlap), overlap)


def nms(boxes: torch.Tensor, scores: torch.Tensor, score_threshold: float, nms_threshold: float,
        eta: float, top_k: int) -> list[int]:
    """The fork's ApplyNMSFast: indices kept, best first.

    Candidates score above ``score_threshold``, sorted by score (stable, descending), cut to
    ``top_k`` when top_k > -1; a candidate is kept when its overlap with every kept box is at most
    the threshold, which shrinks by ``eta`` after each keep while above 0.5.
    """
    candidates = torch.nonzero(scores > score_threshold).flatten()
    order = torch.sort(scores[candidates], descending=True, stable=True).indices
    candidates = candidates[order]
    if -1 < top_k < len(candidates):
        candidates = candidates[:top_k]
    kept: list[int] = []
    threshold = nms_threshold
    for index in candidates.tolist():
        keep = not kept or bool((jaccard(boxes[index], boxes[kept]) <= threshold).all())
        if keep:
            kept.append(index)
            if eta < 1 and threshold > 0.5:
                threshold *= eta
    return kept
