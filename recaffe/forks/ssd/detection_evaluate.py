from __future__ import annotations

from typing import final

import torch

from recaffe import forks
from recaffe.forks.ssd.matching import pairwise_jaccard
from recaffe.layer import Blobs, Layer
from recaffe.registry import LAYERS


@LAYERS.register("DetectionEvaluate", dialect="ssd")
@final
class DetectionEvaluateLayer(Layer):
    """SSD's DetectionEvaluate: marks each detection a true or false positive against the ground
    truth, for the solver's mean average precision (the fork's detection_evaluate_layer.cpp).

    Forward: first one row per class c != background: [-1, c, number of ground-truth boxes of c
        in the batch (difficult ones only with evaluate_difficult_gt), -1, -1]. Then, by image
        and label in ascending order, one row per detection [image, label, score, tp, fp]: where
        the image has ground truth of that label, its detections in descending score (stable)
        each take the ground-truth box of largest Jaccard overlap (normalized boxes); overlap >=
        overlap_threshold makes a true positive the first time the box is taken and a false
        positive after; a difficult box with evaluate_difficult_gt false gives tp = fp = 0 (the
        solver skips it); lower overlap, or no ground truth of the label, a false positive.
        Ground-truth rows are read up to the first item_id -1; detection rows with item_id -1 are
        skipped. The solver (``evaluation.py``) turns the rows into AP per class and their mean.
    Backward: none.
    Params (detection_evaluate_param): num_classes (required), background_label_id=0,
        overlap_threshold=0.5 (> 0), evaluate_difficult_gt=true. name_size_file/resize_param
        (scoring in pixels of the original images) are not read by recaffe: giving
        name_size_file is an error.
    Bottoms: detections (1, 1, D, 7) from DetectionOutput, ground truth (1, 1, G, 8).
    Tops: (1, 1, num_classes - 1 + valid detections, 5) (num_classes rows when the background
        is -1).
    In place: no.
    """

    exact_num_bottom_blobs = 2
    exact_num_top_blobs = 1
    supports_in_place = False

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = forks.get_dialect("ssd").fork_param(self.param).detection_evaluate_param
        if not p.HasField("num_classes"):
            raise self.error("detection_evaluate_param.num_classes must be given")
        if p.overlap_threshold <= 0:
            raise self.error(
                f"detection_evaluate_param.overlap_threshold must be > 0, got {p.overlap_threshold}"
            )
        if p.HasField("name_size_file"):
            raise self.error(
                "detection_evaluate_param.name_size_file (scoring in original-image pixels) is not "
                "supported by recaffe; leave it out to score normalized boxes"
            )
        self.num_classes = p.num_classes
        self.background = p.background_label_id
        self.threshold = p.overlap_threshold
        self.difficult = p.evaluate_difficult_gt

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        if bottom[0].shape[:2] != (1, 1) or bottom[0].shape[-1] != 7:
            raise self.error(f"bottom 0 (detections) must be (1, 1, D, 7), got {bottom[0].shape}")
        if bottom[1].shape[:2] != (1, 1) or bottom[1].shape[-1] != 8:
            raise self.error(f"bottom 1 (ground truth) must be (1, 1, G, 8), got {bottom[1].shape}")
        valid = int((bottom[0].data.reshape(-1, 7)[:, 1] != -1).sum())
        classes = self.num_classes if self.background == -1 else self.num_classes - 1
        top[0].reshape(1, 1, classes + valid, 5)

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        dets = bottom[0].data.reshape(-1, 7).cpu()
        gt_rows = bottom[1].data.reshape(-1, 8).cpu()
        ground: dict[int, dict[int, list[int]]] = {}
        for index, (item, label) in enumerate(gt_rows[:, :2].to(torch.int64).tolist()):
            if item == -1:
                break
            if label == self.background:
                raise self.error(f"ground truth row {index} has the background label {self.background}")
            ground.setdefault(item, {}).setdefault(label, []).append(index)
        found: dict[int, dict[int, list[int]]] = {}
        for index, (item, label) in enumerate(dets[:, :2].to(torch.int64).tolist()):
            if item == -1:
                continue
            if label == self.background:
                raise self.error(f"detection row {index} has the background label {self.background}")
            found.setdefault(item, {}).setdefault(label, []).append(index)
        rows: list[list[float]] = []
        counts: dict[int, int] = {}
        for labels in ground.values():
            for label, indices in labels.items():
                hard = gt_rows[indices, 7] != 0
                counts[label] = counts.get(label, 0) + (
                    len(indices) if self.difficult else int((~hard).sum())
                )
        for c in range(self.num_classes):
            if c != self.background:
                rows.append([-1, c, counts.get(c, 0), -1, -1])
        for item in sorted(found):
            for label in sorted(found[item]):
                if label == -1:
                    continue
                rows += self._judge(
                    item, label, found[item][label], dets, ground.get(item, {}).get(label), gt_rows
                )
        out = top[0].data.view(-1, 5)
        out.zero_()
        if rows:
            out[: len(rows)] = torch.tensor(rows, dtype=torch.float64).to(out.dtype)

    def _judge(
        self,
        item: int,
        label: int,
        indices: list[int],
        dets: torch.Tensor,
        gt: list[int] | None,
        gt_rows: torch.Tensor,
    ) -> list[list[float]]:
        scores = dets[indices, 2].float()
        if gt is None:
            return [[item, label, float(s), 0, 1] for s in scores.tolist()]
        order = torch.sort(scores, descending=True, stable=True).indices
        boxes = dets[indices][order][:, 3:7].float()
        gt_boxes = gt_rows[gt, 3:7].float()
        hard = (gt_rows[gt, 7] != 0).tolist()
        overlaps = pairwise_jaccard(boxes, gt_boxes)
        taken = [False] * len(gt)
        rows = []
        for k, score in enumerate(scores[order].tolist()):
            best, where = overlaps[k].max(0)
            j = int(where)
            if float(best) >= self.threshold:
                if not self.difficult and hard[j]:
                    rows.append([item, label, score, 0, 0])
                elif not taken[j]:
                    taken[j] = True
                    rows.append([item, label, score, 1, 0])
                else:
                    rows.append([item, label, score, 0, 1])
            else:
                rows.append([item, label, score, 0, 1])
        return rows
