"""SSD's training arithmetic (the fork's util/bbox_util.cpp): ground truth rows, matching priors to
ground truth (bipartite, then per prediction), encoding boxes against priors, and the per-prior
confidence and localization losses hard-negative mining ranks.

Boxes are (…, 4) tensors of (xmin, ymin, xmax, ymax) in float32, as the fork keeps them in
NormalizedBBox's float fields.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recaffe.forks.ssd.bbox import CENTER_SIZE, CORNER, CORNER_SIZE, box_size

F32 = torch.float32
OVERLAP_FLOOR = 1e-6  # the fork keeps only overlaps above this in MatchBBox


@dataclass
class GroundTruth:
    """One image's ground truth boxes (G, 4), labels (G,) and difficult flags (G,)."""

    boxes: torch.Tensor
    labels: torch.Tensor
    difficult: torch.Tensor


def read_ground_truth(
    rows: torch.Tensor, background_label_id: int, use_difficult: bool
) -> tuple[dict[int, GroundTruth], int | None]:
    """GetGroundTruth: rows (G, 8) of [item_id, label, instance_id, xmin, ymin, xmax, ymax, difficult].

    Rows with item_id -1 are skipped, difficult ones too unless ``use_difficult``. Returns the
    boxes by image and, when a row has the background label, that row's index (an error for the
    caller; the fork CHECK-fails).
    """
    found: dict[int, list[int]] = {}
    items = rows[:, 0].to(torch.int64).tolist()
    labels = rows[:, 1].to(torch.int64).tolist()
    difficult = (rows[:, 7] != 0).tolist()
    for index, (item, label, hard) in enumerate(zip(items, labels, difficult)):
        if item == -1:
            continue
        if label == background_label_id:
            return {}, index
        if hard and not use_difficult:
            continue
        found.setdefault(item, []).append(index)
    out = {}
    for item, indices in found.items():
        picked = rows[indices]
        out[item] = GroundTruth(picked[:, 3:7].to(F32), picked[:, 1].to(torch.int64), picked[:, 7] != 0)
    return out, None


def pairwise_jaccard(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """JaccardOverlap of every box of ``a`` (P, 4) with every box of ``b`` (G, 4): (P, G), float32."""
    a, b = a[:, None, :], b[None, :, :]
    disjoint = (
        (b[..., 0] > a[..., 2]) | (b[..., 2] < a[..., 0]) | (b[..., 1] > a[..., 3]) | (b[..., 3] < a[..., 1])
    )
    iw = torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])
    ih = torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])
    inter = iw * ih
    overlap = inter / (box_size(a) + box_size(b) - inter)
    empty = disjoint | (iw <= 0) | (ih <= 0)
    return torch.where(empty, torch.zeros_like(overlap), overlap)


def cross_boundary(boxes: torch.Tensor) -> torch.Tensor:
    return ((boxes < 0) | (boxes > 1)).any(-1)


def match_boxes(
    gt: torch.Tensor, preds: torch.Tensor, per_prediction: bool, threshold: float, ignore_cross_boundary: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """MatchBBox of predictions (P, 4) against ground truth (G, 4): (indices (P,), overlaps (P,)).

    An index is the matched ground truth's position in ``gt``, -1 for none, -2 for a prediction
    ignored for crossing the image boundary. First bipartite: repeatedly the largest remaining
    overlap (first in prediction, then ground-truth order on ties) pairs an unmatched prediction
    with a ground truth not yet taken. Then, for PER_PREDICTION, each still unmatched prediction
    takes its best ground truth with overlap >= threshold. Overlaps <= 1e-6 count as none.
    """
    num = preds.shape[0]
    indices = torch.full((num,), -1, dtype=torch.int64)
    best = torch.zeros(num, dtype=F32)
    if gt.shape[0] == 0:
        return indices, best
    overlaps = pairwise_jaccard(preds, gt)
    if ignore_cross_boundary:
        ignored = cross_boundary(preds)
        indices[ignored] = -2
        overlaps[ignored] = 0
    present = overlaps > OVERLAP_FLOOR
    best = torch.where(present, overlaps, torch.zeros_like(overlaps)).amax(1)
    open_gt = torch.ones(gt.shape[0], dtype=torch.bool)
    for _ in range(gt.shape[0]):
        free = present & (indices == -1)[:, None] & open_gt[None, :]
        if not bool(free.any()):
            break
        flat = int(torch.where(free, overlaps, torch.full_like(overlaps, -1)).reshape(-1).argmax())
        i, j = divmod(flat, gt.shape[0])
        indices[i], best[i] = j, overlaps[i, j]
        open_gt[j] = False
    if per_prediction:
        eligible = present & (overlaps >= threshold) & (indices == -1)[:, None]
        value, where = torch.where(eligible, overlaps, torch.full_like(overlaps, -1)).max(1)
        take = value >= 0
        indices[take], best[take] = where[take], value[take]
    return indices, best


def encode(
    priors: torch.Tensor,
    variances: torch.Tensor,
    boxes: torch.Tensor,
    code_type: int,
    variance_in_target: bool,
) -> torch.Tensor:
    """EncodeBBox of ``boxes`` (K, 4) against their priors (K, 4) in float32; the variances divide
    unless ``variance_in_target`` (then the loss divides both sides by them instead)."""
    var = torch.ones_like(variances) if variance_in_target else variances
    if code_type == CORNER:
        return (boxes - priors) / var
    pw, ph = priors[:, 2] - priors[:, 0], priors[:, 3] - priors[:, 1]
    if code_type == CORNER_SIZE:
        return (boxes - priors) / torch.stack([pw, ph, pw, ph], -1) / var
    if code_type != CENTER_SIZE:
        raise ValueError(f"unknown code_type {code_type}")
    pcx, pcy = (priors[:, 0] + priors[:, 2]) / 2, (priors[:, 1] + priors[:, 3]) / 2
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    bcx, bcy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    return torch.stack(
        [
            (bcx - pcx) / pw / var[:, 0],
            (bcy - pcy) / ph / var[:, 1],
            torch.log(bw / pw) / var[:, 2],
            torch.log(bh / ph) / var[:, 3],
        ],
        -1,
    )


def softmax_losses(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """-log(max(p[label], FLT_MIN)) per row of ``scores`` (R, C), the softmax taken per row."""
    prob = torch.softmax(scores, -1).gather(1, labels[:, None]).squeeze(1)
    return -torch.log(prob.clamp_min(torch.finfo(torch.float32).tiny))


def logistic_losses(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The fork's stable sigmoid cross-entropy, summed per row of ``scores`` (R, C)."""
    positive = (scores >= 0).to(scores.dtype)
    terms = scores * (targets - positive) - torch.log1p(torch.exp(scores - 2 * scores * positive))
    return -terms.sum(-1)


def smooth_l1(diff: torch.Tensor) -> torch.Tensor:
    small = diff.abs() < 1
    return torch.where(small, 0.5 * diff * diff, diff.abs() - 0.5)


def smooth_l1_grad(diff: torch.Tensor) -> torch.Tensor:
    return torch.where(diff.abs() < 1, diff, torch.sign(diff))


def nms_by_loss(boxes: torch.Tensor, losses: torch.Tensor, threshold: float, top_k: int) -> list[int]:
    """ApplyNMS (the mining variant): indices in descending loss (stable), top_k kept when > -1,
    boxes smaller than 1e-5 dropped, a box dropped when its overlap with a kept one exceeds
    ``threshold``; stops once top_k are kept."""
    order = torch.sort(losses, descending=True, stable=True).indices.tolist()
    if -1 < top_k < len(order):
        order = order[:top_k]
    sizes = box_size(boxes)
    kept: list[int] = []
    while order:
        best = order.pop(0)
        if float(sizes[best]) < 1e-5:
            continue
        kept.append(best)
        if -1 < top_k <= len(kept):
            break
        if order:
            overlap = pairwise_jaccard(boxes[best][None], boxes[order])[0]
            order = [
                o
                for o, v, s in zip(order, overlap.tolist(), sizes[order].tolist())
                if s >= 1e-5 and v <= threshold
            ]
    return kept
