from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from recaffe.blob import Blob as NativeBlob
from recaffe.forks.faster_rcnn import boxes, config
from recaffe.forks.faster_rcnn.python_layer import BuiltinPythonLayer, put


class ProposalTargetLayer(BuiltinPythonLayer):
    """Stand-in for py-faster-rcnn's ``rpn.proposal_target_layer.ProposalTargetLayer``: samples
    the RPN's proposals for the detection head and gives their targets
    (lib/rpn/proposal_target_layer.py).

    Forward: the proposals plus the ground-truth boxes are matched to their best ground truth
        (overlaps in float64); foreground (overlap >= FG_THRESH) is sampled up to
        round(FG_FRACTION·BATCH_SIZE), background (BG_THRESH_LO <= overlap < BG_THRESH_HI) up to
        the rest of BATCH_SIZE (numpy's ``choice`` without replacement, on the layer's own
        stream); labels are the ground truth's class (0 for background); targets
        the deltas to it (minus BBOX_NORMALIZE_MEANS, over BBOX_NORMALIZE_STDS when
        BBOX_NORMALIZE_TARGETS_PRECOMPUTED) in the 4 columns of its class, inside weights
        BBOX_INSIDE_WEIGHTS there, outside weights 1 where inside weights are > 0. Settings from
        ``config.current().TRAIN``. No backward.
    param_str: 'num_classes' (required, background included).
    Bottoms: rpn_rois (R×5: 0, x1, y1, x2, y2), gt_boxes (G×5: x1, y1, x2, y2, class).
    Tops: rois (S×5), labels (S), bbox_targets, bbox_inside_weights, bbox_outside_weights
        (S×4·num_classes each).
    """

    required = ("num_classes",)
    num_bottoms = 2
    num_tops = (5, 5)

    def layer_setup(self, bottom: list[NativeBlob], top: list[NativeBlob]) -> None:
        classes = self.params["num_classes"]
        if not isinstance(classes, int) or classes < 2:
            raise self.fail(f"param_str 'num_classes' must be an integer >= 2, got {classes!r}")
        self.num_classes = classes
        top[0].reshape(1, 5)
        top[1].reshape(1, 1)
        for blob in top[2:]:
            blob.reshape(1, classes * 4)

    def run(self, bottom: list[NativeBlob], top: list[NativeBlob]) -> None:
        settings = config.current().TRAIN
        gt = bottom[1].data.reshape(-1, 5).cpu()
        if gt.shape[0] == 0:
            raise self.fail("gt_boxes (bottom 1) is empty: every training image needs a ground-truth box")
        proposed = bottom[0].data.reshape(-1, 5).cpu()
        rois = torch.cat([proposed, torch.cat([torch.zeros_like(gt[:, :1]), gt[:, :4]], dim=1)])
        if bool((rois[:, 0] != 0).any()):
            raise self.fail("only single-image batches are supported (every roi's image index must be 0)")
        per_image = int(settings.BATCH_SIZE)
        fg_per_image = int(np.round(settings.FG_FRACTION * per_image))
        overlaps = boxes.bbox_overlaps(rois[:, 1:5], gt[:, :4]).numpy()
        assignment = overlaps.argmax(axis=1)
        best = overlaps.max(axis=1)
        classes = gt[:, 4].numpy()[assignment]
        keep, fg_count = sample_rois(self.random, best, fg_per_image, per_image, settings)
        labels = classes[keep].astype(np.float32)
        labels[fg_count:] = 0
        chosen = rois[torch.from_numpy(keep)]
        # float32 as py-faster-rcnn (its rois and gt_boxes are float32 arrays)
        matched = gt[torch.from_numpy(assignment[keep]), :4].float()
        deltas = boxes.bbox_transform(chosen[:, 1:5].float(), matched).numpy()
        if settings.BBOX_NORMALIZE_TARGETS_PRECOMPUTED:
            means, stds = np.array(settings.BBOX_NORMALIZE_MEANS), np.array(settings.BBOX_NORMALIZE_STDS)
            deltas = (deltas - means) / stds
        compact = np.hstack((labels[:, None], deltas)).astype(np.float32)
        try:
            targets, inside = class_targets(compact, self.num_classes, settings.BBOX_INSIDE_WEIGHTS)
        except ValueError as e:
            raise self.fail(f"gt_boxes: {e}") from e
        put(top[0], chosen)
        put(top[1], labels)
        put(top[2], targets)
        put(top[3], inside)
        put(top[4], (inside > 0).astype(np.float32))


def sample_rois(random: np.random.RandomState, overlaps: np.ndarray, fg_per_image: int, per_image: int,
                settings: Any) -> tuple[np.ndarray, int]:
    """py-faster-rcnn's roi sampling (_sample_rois): indices of up to ``fg_per_image`` foreground
    rois (overlap >= FG_THRESH) then background ones (BG_THRESH_LO <= overlap < BG_THRESH_HI) up
    to ``per_image`` in all, each set drawn with numpy's ``choice`` without replacement; and the
    foreground count."""
    fg = np.where(overlaps >= settings.FG_THRESH)[0]
    fg_count = min(fg_per_image, fg.size)
    if fg.size > 0:
        fg = random.choice(fg, size=fg_count, replace=False)
    bg = np.where((overlaps < settings.BG_THRESH_HI) & (overlaps >= settings.BG_THRESH_LO))[0]
    if bg.size > 0:
        bg = random.choice(bg, size=min(per_image - fg_count, bg.size), replace=False)
    return np.append(fg, bg).astype(np.int64), fg_count


def class_targets(compact: np.ndarray, num_classes: int, inside_weights: Sequence[float]) -> tuple[
        np.ndarray, np.ndarray]:
    """Targets N×(class, dx, dy, dw, dh) spread into the 4 columns of their class (N×4·K), with
    the inside weights there (_get_bbox_regression_labels); class 0 rows stay 0."""
    targets = np.zeros((compact.shape[0], 4 * num_classes), dtype=np.float32)
    weights = np.zeros_like(targets)
    for row in np.where(compact[:, 0] > 0)[0]:
        cls = int(compact[row, 0])
        if cls >= num_classes:
            raise ValueError(f"class {cls} is outside num_classes {num_classes}")
        targets[row, 4 * cls:4 * cls + 4] = compact[row, 1:]
        weights[row, 4 * cls:4 * cls + 4] = inside_weights
    return targets, weights
