from __future__ import annotations

from typing import Any, final

import numpy as np
import torch

from recaffe import forks
from recaffe.forks.ssd import augment
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
        overlap_threshold=0.5 (> 0), evaluate_difficult_gt=true, name_size_file (``name height
        width`` per test image, in database order: boxes are then compared in pixels of the
        original images, widths counting the end pixel, after undoing resize_param's
        FIT_LARGE_SIZE_AND_PAD padding or FIT_SMALL_SIZE scales; as in the fork, the file's next
        line is used per image that has detections, wrapping around at its end).
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
        self.sizes = read_name_sizes(p.name_size_file, self) if p.HasField("name_size_file") else []
        self.count = 0  # the image of the name_size_file the next evaluated image is
        self.resize = p.resize_param if p.HasField("resize_param") else None
        if self.resize is not None and (self.resize.height <= 0 or self.resize.width <= 0):
            raise self.error("detection_evaluate_param.resize_param needs height and width > 0")
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

    def _rows_by_item_and_label(self, rows: torch.Tensor, what: str,
                                padding_ends: bool) -> dict[int, dict[int, list[int]]]:
        """Row indices by image (column 0) and label (column 1). A row of image -1 is padding: the
        rest are too when ``padding_ends`` (ground truth), else only it is skipped (detections)."""
        grouped: dict[int, dict[int, list[int]]] = {}
        for index, (item, label) in enumerate(rows[:, :2].to(torch.int64).tolist()):
            if item == -1:
                if padding_ends:
                    break
                continue
            if label == self.background:
                raise self.error(f"{what} row {index} has the background label {self.background}")
            grouped.setdefault(item, {}).setdefault(label, []).append(index)
        return grouped

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        dets = bottom[0].data.reshape(-1, 7).cpu()
        gt_rows = bottom[1].data.reshape(-1, 8).cpu()
        ground = self._rows_by_item_and_label(gt_rows, "ground truth", padding_ends=True)
        found = self._rows_by_item_and_label(dets, "detection", padding_ends=False)
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
            if self.sizes:  # one name_size_file line per image with detections, wrapping (as the fork)
                self.count = (self.count + 1) % len(self.sizes)
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
        if self.sizes:  # in pixels of the original image (the fork's OutputBBox)
            size = self.sizes[self.count]
            scaled_gt = [output_box(g, size, self.resize) for g in gt_boxes.tolist()]
            overlaps = torch.tensor(
                [
                    [pixel_jaccard(output_box(b, size, self.resize), g) for g in scaled_gt]
                    for b in boxes.tolist()
                ],
                dtype=torch.float32,
            )
        else:
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


Region = tuple[float, float, float, float]


def read_name_sizes(path: str, layer: Layer) -> list[tuple[int, int]]:
    """The name_size_file: ``name height width`` per image, in the database's order."""
    try:
        with open(path, encoding="utf-8") as f:
            words = f.read().split()
    except OSError as e:
        raise layer.error(f"cannot open the name_size_file {path!r}: {e.strerror}") from e
    sizes = []
    for i in range(0, len(words) - len(words) % 3, 3):
        try:
            sizes.append((int(words[i + 1]), int(words[i + 2])))
        except ValueError:
            break  # the fork's stream reading stops at the first malformed line
    return sizes


def _clip(r: Region, high_x: float = 1.0, high_y: float = 1.0) -> Region:
    return (
        min(max(r[0], 0.0), high_x),
        min(max(r[1], 0.0), high_y),
        min(max(r[2], 0.0), high_x),
        min(max(r[3], 0.0), high_y),
    )


def _size(r: Region, normalized: bool) -> float:
    f = np.float32
    w, h = f(r[2]) - f(r[0]), f(r[3]) - f(r[1])
    if w < 0 or h < 0:
        return 0.0
    return float(w * h) if normalized else float((w + f(1)) * (h + f(1)))


def _scaled(r: Region, height: int, width: int) -> tuple[Region, float]:
    """ScaleBBox: pixels, and the size with the +1 of unnormalized boxes."""
    f = np.float32
    out = (
        float(f(r[0]) * f(width)),
        float(f(r[1]) * f(height)),
        float(f(r[2]) * f(width)),
        float(f(r[3]) * f(height)),
    )
    return out, _size(out, normalized=not (width > 1 or height > 1))


def output_box(box: Region, size: tuple[int, int], resize: Any) -> tuple[Region, float]:
    """OutputBBox: a normalized box in pixels of the original image (height, width), and its size."""
    height, width = size
    f = np.float32
    temp = box
    if resize is not None and resize.resize_mode == resize.FIT_LARGE_SIZE_AND_PAD:
        aspect, resize_aspect = f(width) / f(height), f(resize.width) / f(resize.height)
        if aspect > resize_aspect:
            pad = float(f((f(resize.height) - f(resize.width) / aspect) / f(2)))
            part = float(f(pad / resize.height))
            source = (0.0, part, 1.0, float(f(1.0 - part)))
        else:
            pad = float(f((f(resize.width) - f(resize.height) * aspect) / f(2)))
            part = float(f(pad / resize.width))
            source = (part, 0.0, float(f(1.0 - part)), 1.0)
        projected = augment.project(source, augment.Box(0, *box))
        if projected is not None:
            temp = (projected.xmin, projected.ymin, projected.xmax, projected.ymax)
    elif (
        resize is not None
        and resize.resize_mode == resize.FIT_SMALL_SIZE
        and resize.height_scale
        and resize.width_scale
    ):
        scaled, _ = _scaled(box, resize.height_scale, resize.width_scale)
        clipped = _clip(scaled, float(width), float(height))
        return clipped, _size(clipped, normalized=True)
    return _scaled(_clip(temp), height, width)


def pixel_jaccard(a: tuple[Region, float], b: tuple[Region, float]) -> float:
    """JaccardOverlap(normalized=false) of two OutputBBox results: widths count the end pixel."""
    (ra, size_a), (rb, size_b) = a, b
    if rb[0] > ra[2] or rb[2] < ra[0] or rb[1] > ra[3] or rb[3] < ra[1]:
        return 0.0
    f = np.float32
    iw = f(min(ra[2], rb[2])) - f(max(ra[0], rb[0])) + f(1)
    ih = f(min(ra[3], rb[3])) - f(max(ra[1], rb[1])) + f(1)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return float(inter / (f(size_a) + f(size_b) - inter))
