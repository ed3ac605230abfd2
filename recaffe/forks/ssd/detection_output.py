from __future__ import annotations

import logging
from typing import final

import torch

from recaffe import forks
from recaffe.forks.ssd import bbox
from recaffe.layer import Blobs, Layer
from recaffe.registry import LAYERS

log = logging.getLogger(__name__)
FLT_MAX = 3.4028234663852886e38


@LAYERS.register("DetectionOutput", dialect="ssd")
@final
class DetectionOutputLayer(Layer):
    """SSD's DetectionOutput: decodes box predictions against the priors, runs per-class NMS, keeps the best.

    Forward: per image, boxes = decode(priors, loc) (code_type, variances); for each class but
        the background, NMS (``bbox.nms``: confidence_threshold, nms_param) over that class's
        scores; if keep_top_k > -1 and more detections remain, only the keep_top_k best scores
        over all classes stay. Rows (image, label, score, xmin, ymin, xmax, ymax), by image, then
        label ascending, then score descending (as the fork's std::map of labels). No detection
        at all: one row per image, [image, -1, -1, -1, -1, -1, -1].
    Backward: none.
    Params (detection_output_param): num_classes (required), share_location=true,
        background_label_id=0, nms_param {nms_threshold=0.3, top_k (none: all), eta=1},
        code_type=CORNER, variance_encoded_in_target=false, keep_top_k=-1,
        confidence_threshold (none: all). save_output_param and visualize (files, windows) are
        not done: recaffe logs that it ignores them; the top is the same.
    Bottoms: loc (N × P·L·4, L = 1 if share_location else num_classes), conf (N × P·num_classes),
        priors (1 × 2 × P·4, from PriorBox). Tops: detections (1 × 1 × D × 7).
    In place: no.
    """

    exact_num_bottom_blobs = 3
    exact_num_top_blobs = 1
    supports_in_place = False

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = forks.get_dialect("ssd").fork_param(self.param).detection_output_param
        if not p.HasField("num_classes") or p.num_classes < 1:
            raise self.error("detection_output_param.num_classes must be given (>= 1)")
        self.num_classes = p.num_classes
        self.share_location = p.share_location
        self.num_loc_classes = 1 if p.share_location else p.num_classes
        self.background = p.background_label_id
        self.code_type = p.code_type
        self.variance_encoded = p.variance_encoded_in_target
        self.keep_top_k = p.keep_top_k
        self.confidence_threshold = p.confidence_threshold if p.HasField("confidence_threshold") else -FLT_MAX
        self.nms_threshold = p.nms_param.nms_threshold
        self.eta = p.nms_param.eta
        self.top_k = p.nms_param.top_k if p.nms_param.HasField("top_k") else -1
        if self.nms_threshold < 0:
            raise self.error(f"nms_param.nms_threshold must be >= 0, got {self.nms_threshold}")
        if not 0 < self.eta <= 1:
            raise self.error(f"nms_param.eta must be in (0, 1], got {self.eta}")
        if p.save_output_param.output_directory or p.visualize:
            log.warning("%s: save_output_param/visualize are not done by recaffe (the detections "
                        "are in the top blob)", self.describe())

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        loc, conf, prior = bottom
        priors = prior.shape[2] // 4 if prior.num_axes == 3 else -1
        if prior.num_axes != 3 or prior.shape[1] != 2 or prior.shape[2] % 4:
            raise self.error(f"priors (bottom 2) must be 1×2×(P·4), got shape {prior.shape}")
        if loc.count(1) != priors * self.num_loc_classes * 4:
            raise self.error(f"loc (bottom 0) has {loc.count(1)} values per image, expected "
                             f"{priors} priors × {self.num_loc_classes} × 4")
        if conf.count(1) != priors * self.num_classes:
            raise self.error(f"conf (bottom 1) has {conf.count(1)} values per image, expected "
                             f"{priors} priors × {self.num_classes} classes")
        if loc.shape[0] != conf.shape[0]:
            raise self.error(f"loc and conf disagree on the batch size ({loc.shape[0]} vs {conf.shape[0]})")
        self.num_priors = priors
        top[0].reshape(1, 1, 1, 7)

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        loc, conf, prior = (b.data.float() for b in bottom)
        num = loc.shape[0]
        priors = prior[0, 0].view(-1, 4)
        variances = prior[0, 1].view(-1, 4)
        locs = loc.reshape(num, self.num_priors, self.num_loc_classes, 4)
        scores = conf.reshape(num, self.num_priors, self.num_classes)
        rows: list[list[float]] = []
        for image in range(num):
            boxes = bbox.decode(priors, variances, locs[image].transpose(0, 1), self.code_type,
                                self.variance_encoded)  # (L, P, 4)
            kept: dict[int, list[int]] = {}
            for label in range(self.num_classes):
                if label == self.background:
                    continue
                label_boxes = boxes[0 if self.share_location else label]
                kept[label] = bbox.nms(label_boxes, scores[image, :, label], self.confidence_threshold,
                                       self.nms_threshold, self.eta, self.top_k)
            if self.keep_top_k > -1 and sum(map(len, kept.values())) > self.keep_top_k:
                found = [(float(scores[image, i, label]), label, i)
                         for label, ids in kept.items() for i in ids]
                ranked = sorted(found, key=lambda item: -item[0])[: self.keep_top_k]
                kept = {}
                for _, label, i in ranked:
                    kept.setdefault(label, []).append(i)
            for label in sorted(kept):
                label_boxes = boxes[0 if self.share_location else label]
                for i in kept[label]:
                    rows.append([image, label, float(scores[image, i, label]), *label_boxes[i].tolist()])
        if not rows:
            rows = [[image, -1, -1, -1, -1, -1, -1] for image in range(num)]
        top[0].reshape(1, 1, len(rows), 7)
        top[0].data.copy_(torch.tensor(rows, dtype=torch.float32).view(1, 1, -1, 7))
