from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from recaffe.blob import Blob as NativeBlob
from recaffe.forks.faster_rcnn import boxes, config
from recaffe.forks.faster_rcnn.proposal_target import class_targets, sample_rois
from recaffe.forks.faster_rcnn.python_layer import BuiltinPythonLayer, put

FAST_RCNN_FIELDS = ("max_classes", "max_overlaps", "bbox_targets")


class RoIDataLayer(BuiltinPythonLayer):
    """Stand-in for py-faster-rcnn's ``roi_data_layer.layer.RoIDataLayer`` (lib/roi_data_layer/).

    ``set_roidb(roidb)`` (what py-faster-rcnn's SolverWrapper calls on ``net.layers[0]``) gives
    the images: a list of dicts with 'image' (a path, read with OpenCV as BGR, or an H×W×3
    BGR array), 'boxes' (N×4, x1, y1, x2, y2 in image pixels), 'gt_classes' (N; 0 for a box
    that is not ground truth), 'flipped' (the image is mirrored; its boxes already are, as in
    py-faster-rcnn's flipped roidb entries), 'width' and 'height' (for ASPECT_GROUPING); in the
    Fast R-CNN mode also 'max_classes', 'max_overlaps' and 'bbox_targets' (N×5), as
    py-faster-rcnn's roidb preparation adds them (``prepare_roidb`` below does the same).
    Forward: the next IMS_PER_BATCH images of a shuffled order (ASPECT_GROUPING pairs landscape
        with landscape and portrait with portrait as py-faster-rcnn does; an odd one out ends
        the epoch), reshuffled when fewer than IMS_PER_BATCH + 1 remain; each minus PIXEL_MEANS,
        scaled so its short side is one of TRAIN.SCALES (picked at random per image) and its
        long side at most MAX_SIZE (cv2.resize, linear; no resize at scale 1), zero-padded to
        the largest. End-to-end mode (cfg.TRAIN.HAS_RPN; one image): im_info and the scaled
        ground-truth boxes. Fast R-CNN mode: per image, BATCH_SIZE/IMS_PER_BATCH rois sampled
        from its boxes, foreground (max_overlaps >= FG_THRESH) up to FG_FRACTION of them,
        background (BG_THRESH_LO <= max_overlaps < BG_THRESH_HI) the rest, labels max_classes
        (0 for background), scaled rois with their image index, and (BBOX_REG) the class-wise
        targets and weights. Randomness: numpy (``randint``, ``permutation``, ``choice``) on the
        layer's own stream, in py-faster-rcnn's order. No backward.
    param_str: 'num_classes' (required).
    Tops: end-to-end: data (1×3×H×W), im_info (1×3: height, width, scale), gt_boxes (G×5: x1,
        y1, x2, y2, class, scaled). Fast R-CNN: data (I×3×H×W), rois (R×5), labels (R)
        [, bbox_targets, bbox_inside_weights, bbox_outside_weights (R×4·num_classes)].
    Not built: USE_PREFETCH's background process (the layer computes each batch in forward).
    """

    required = ("num_classes",)
    num_bottoms = 0
    num_tops = (3, 6)

    def layer_setup(self, bottom: list[NativeBlob], top: list[NativeBlob]) -> None:
        settings = config.current().TRAIN
        classes = self.params["num_classes"]
        if not isinstance(classes, int) or classes < 2:
            raise self.fail(f"param_str 'num_classes' must be an integer >= 2, got {classes!r}")
        self.num_classes = classes
        self.has_rpn = bool(settings.HAS_RPN)
        if self.has_rpn and settings.IMS_PER_BATCH != 1:
            raise self.fail(f"the end-to-end mode (cfg.TRAIN.HAS_RPN) takes one image per batch "
                            f"(cfg.TRAIN.IMS_PER_BATCH = 1), got {settings.IMS_PER_BATCH}")
        if not self.has_rpn and settings.BATCH_SIZE % settings.IMS_PER_BATCH:
            raise self.fail(f"cfg.TRAIN.IMS_PER_BATCH ({settings.IMS_PER_BATCH}) must divide "
                            f"cfg.TRAIN.BATCH_SIZE ({settings.BATCH_SIZE})")
        wanted = 3 if self.has_rpn else 6 if settings.BBOX_REG else 3
        mode = "end-to-end (cfg.TRAIN.HAS_RPN)" if self.has_rpn else (
            "Fast R-CNN (HAS_RPN false" + (", BBOX_REG)" if settings.BBOX_REG else ", no BBOX_REG)"))
        if len(top) != wanted:
            raise self.fail(f"the {mode} mode produces {wanted} tops, got {len(top)}: set cfg.TRAIN.HAS_RPN "
                            f"as the net expects (recaffe.forks.faster_rcnn.config.end2end() for "
                            f"py-faster-rcnn's faster_rcnn_end2end.yml)")
        self.roidb: list[dict[str, Any]] = []
        self.perm = np.zeros(0, dtype=np.int64)
        self.cur = 0
        top[0].reshape(settings.IMS_PER_BATCH, 3, max(settings.SCALES), settings.MAX_SIZE)
        if self.has_rpn:
            top[1].reshape(1, 3)
            top[2].reshape(1, 4)
        else:
            top[1].reshape(1, 5)
            top[2].reshape(1)
            for blob in top[3:]:
                blob.reshape(1, classes * 4)

    def set_roidb(self, roidb: Sequence[dict[str, Any]]) -> None:
        """The training images (see the class); shuffles them."""
        if not roidb:
            raise self.fail("set_roidb: the roidb is empty")
        needed = ("image", "boxes", "gt_classes") + (() if self.has_rpn else FAST_RCNN_FIELDS)
        for index, entry in enumerate(roidb):
            missing = [k for k in needed if k not in entry]
            if missing:
                hint = "" if self.has_rpn else " (recaffe.forks.faster_rcnn.roi_data.prepare_roidb adds them)"
                raise self.fail(f"set_roidb: entry {index} lacks {', '.join(missing)}{hint}")
        self.roidb = list(roidb)
        self._shuffle()

    def _shuffle(self) -> None:
        settings = config.current().TRAIN
        if settings.ASPECT_GROUPING:
            wide = np.array([self._size(r)[1] >= self._size(r)[0] for r in self.roidb])
            inds = np.hstack((self.random.permutation(np.where(wide)[0]),
                              self.random.permutation(np.where(~wide)[0])))
            pairs = len(inds) // 2
            rows = inds[: 2 * pairs].reshape(-1, 2)[self.random.permutation(np.arange(pairs))]
            self.perm = np.concatenate([rows.reshape(-1), inds[2 * pairs:]])
        else:
            self.perm = self.random.permutation(np.arange(len(self.roidb)))
        self.cur = 0

    @staticmethod
    def _size(entry: dict[str, Any]) -> tuple[int, int]:
        if "height" in entry and "width" in entry:
            return int(entry["height"]), int(entry["width"])
        image = entry["image"]
        if isinstance(image, np.ndarray):
            return int(image.shape[0]), int(image.shape[1])
        raise ValueError("a roidb entry with an image path needs 'height' and 'width' for ASPECT_GROUPING")

    def _image(self, entry: dict[str, Any]) -> np.ndarray:
        image = entry["image"]
        if isinstance(image, np.ndarray):
            pixels: np.ndarray = image
        else:
            import cv2  # the forks extra (opencv-python-headless)

            read = cv2.imread(str(image))
            if read is None:
                raise self.fail(f"cannot read image {image!r}")
            pixels = np.asarray(read)
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise self.fail(f"an image must be H×W×3 (BGR), got shape {pixels.shape}")
        return pixels[:, ::-1, :] if entry.get("flipped", False) else pixels

    def _prepared(self, entry: dict[str, Any], target: int, settings: Any) -> tuple[np.ndarray, float]:
        """prep_im_for_blob: the image minus the pixel means, scaled; and the scale."""
        image = self._image(entry).astype(np.float32) - np.asarray(settings.PIXEL_MEANS, dtype=np.float32)
        short, long = min(image.shape[:2]), max(image.shape[:2])
        scale = float(target) / float(short)
        if np.round(scale * long) > settings.TRAIN.MAX_SIZE:
            scale = float(settings.TRAIN.MAX_SIZE) / float(long)
        if scale != 1.0:
            import cv2

            resized = cv2.resize(image, None, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
            image = np.asarray(resized, dtype=np.float32)
        return image, scale

    def run(self, bottom: list[NativeBlob], top: list[NativeBlob]) -> None:
        if not self.roidb:
            raise self.fail("no images: call net.layers[0].set_roidb(roidb) first (as py-faster-rcnn's "
                            "SolverWrapper does)")
        settings = config.current()
        train = settings.TRAIN
        if self.cur + train.IMS_PER_BATCH >= len(self.roidb):
            self._shuffle()
        entries = [self.roidb[int(i)] for i in self.perm[self.cur:self.cur + train.IMS_PER_BATCH]]
        self.cur += train.IMS_PER_BATCH
        scale_inds = self.random.randint(0, high=len(train.SCALES), size=len(entries))
        prepared = [self._prepared(e, train.SCALES[int(i)], settings) for e, i in zip(entries, scale_inds)]
        height = max(image.shape[0] for image, _ in prepared)
        width = max(image.shape[1] for image, _ in prepared)
        blob = np.zeros((len(prepared), height, width, 3), dtype=np.float32)  # im_list_to_blob
        for index, (image, _) in enumerate(prepared):
            blob[index, :image.shape[0], :image.shape[1]] = image
        put(top[0], blob.transpose(0, 3, 1, 2))
        if self.has_rpn:
            self._ground_truth(entries[0], prepared[0][1], blob.shape[1:3], top)
        else:
            self._sampled_rois(entries, [scale for _, scale in prepared], train, top)

    def _ground_truth(self, entry: dict[str, Any], scale: float, size: tuple[int, ...],
                      top: list[NativeBlob]) -> None:
        classes = np.asarray(entry["gt_classes"])
        keep = np.where(classes != 0)[0]
        gt = np.empty((len(keep), 5), dtype=np.float32)
        gt[:, :4] = np.asarray(entry["boxes"], dtype=np.float32).reshape(-1, 4)[keep] * scale
        gt[:, 4] = classes[keep]
        put(top[1], np.array([[size[0], size[1], scale]], dtype=np.float32))
        put(top[2], gt)

    def _sampled_rois(self, entries: list[dict[str, Any]], scales: list[float], train: Any,
                      top: list[NativeBlob]) -> None:
        per_image = train.BATCH_SIZE // len(entries)
        fg_per_image = int(np.round(train.FG_FRACTION * per_image))
        rois, labels, targets, inside = [], [], [], []
        for index, (entry, scale) in enumerate(zip(entries, scales)):
            keep, fg_count = sample_rois(self.random, np.asarray(entry["max_overlaps"]), fg_per_image,
                                         per_image, train)
            chosen = np.asarray(entry["max_classes"])[keep].astype(np.float32)
            chosen[fg_count:] = 0
            image_rois = np.asarray(entry["boxes"], dtype=np.float64).reshape(-1, 4)[keep] * scale
            rois.append(np.hstack((np.full((len(keep), 1), float(index)), image_rois)))
            labels.append(chosen)
            t, w = class_targets(np.asarray(entry["bbox_targets"])[keep], self.num_classes,
                                 train.BBOX_INSIDE_WEIGHTS)
            targets.append(t)
            inside.append(w)
        put(top[1], np.vstack(rois).astype(np.float32))
        put(top[2], np.concatenate(labels))
        if len(top) > 3:
            weights = np.vstack(inside)
            put(top[3], np.vstack(targets))
            put(top[4], weights)
            put(top[5], (weights > 0).astype(np.float32))


def prepare_roidb(roidb: Sequence[dict[str, Any]], num_classes: int,
                  settings: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """What py-faster-rcnn's roi_data_layer/roidb.py (prepare_roidb, add_bbox_regression_targets)
    adds to a roidb for the Fast R-CNN mode, computed in place from 'boxes' and 'gt_classes':
    'max_overlaps' (each box's best overlap with a ground-truth box), 'max_classes' (that box's
    class, 0 when it overlaps none), 'bbox_targets' (N×5: class and the deltas to the
    best-overlapping ground-truth box, for boxes overlapping one by >= BBOX_THRESH; normalized
    by BBOX_NORMALIZE_MEANS/STDS when BBOX_NORMALIZE_TARGETS_PRECOMPUTED, else by the data's own
    per-class means and deviations, when BBOX_NORMALIZE_TARGETS). Returns the (K·4) means and
    deviations used."""
    train = (settings if settings is not None else config.current()).TRAIN
    for entry in roidb:
        all_boxes = torch.from_numpy(np.asarray(entry["boxes"], dtype=np.float64).reshape(-1, 4))
        classes = np.asarray(entry["gt_classes"])
        gt = np.where(classes > 0)[0]
        overlaps = np.zeros((all_boxes.shape[0], num_classes))
        if gt.size:
            with_gt = boxes.bbox_overlaps(all_boxes, all_boxes[torch.from_numpy(gt)]).numpy()
            for column, index in enumerate(gt):  # gt_overlaps: the best overlap per class
                cls = int(classes[index])
                overlaps[:, cls] = np.maximum(overlaps[:, cls], with_gt[:, column])
        entry["max_overlaps"] = overlaps.max(axis=1)
        entry["max_classes"] = overlaps.argmax(axis=1)
        targets = np.zeros((all_boxes.shape[0], 5), dtype=np.float32)
        truth = np.where(entry["max_overlaps"] == 1)[0]
        examples = np.where(entry["max_overlaps"] >= train.BBOX_THRESH)[0]
        if truth.size and examples.size:
            ex_boxes = all_boxes[torch.from_numpy(examples)]
            ex_gt = boxes.bbox_overlaps(ex_boxes, all_boxes[torch.from_numpy(truth)])
            matched = all_boxes[torch.from_numpy(truth[ex_gt.argmax(dim=1).numpy()])]
            targets[examples, 0] = entry["max_classes"][examples]
            targets[examples, 1:] = boxes.bbox_transform(ex_boxes, matched).numpy()
        entry["bbox_targets"] = targets
    if train.BBOX_NORMALIZE_TARGETS_PRECOMPUTED:
        means = np.tile(np.array(train.BBOX_NORMALIZE_MEANS), (num_classes, 1))
        stds = np.tile(np.array(train.BBOX_NORMALIZE_STDS), (num_classes, 1))
    else:
        counts = np.zeros((num_classes, 1)) + 1e-14  # cfg.EPS
        sums, squares = np.zeros((num_classes, 4)), np.zeros((num_classes, 4))
        for entry in roidb:
            t = entry["bbox_targets"]
            for cls in range(1, num_classes):
                rows = np.where(t[:, 0] == cls)[0]
                counts[cls] += rows.size
                sums[cls] += t[rows, 1:].sum(axis=0)
                squares[cls] += (t[rows, 1:] ** 2).sum(axis=0)
        means = sums / counts
        stds = np.sqrt(squares / counts - means ** 2)
    if getattr(train, "BBOX_NORMALIZE_TARGETS", True):
        for entry in roidb:
            t = entry["bbox_targets"]
            for cls in range(1, num_classes):
                rows = np.where(t[:, 0] == cls)[0]
                t[rows, 1:] = (t[rows, 1:] - means[cls]) / stds[cls]
    return means.ravel(), stds.ravel()
