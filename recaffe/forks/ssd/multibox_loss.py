from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, final

import torch

from recaffe import forks
from recaffe.forks.ssd import bbox, matching
from recaffe.layer import Blobs
from recaffe.layers.loss.base import LossLayer, Normalization
from recaffe.registry import LAYERS

F32 = torch.float32


@dataclass
class _Image:
    """One image's matching: ground-truth index per prior for each loc label, negatives picked."""

    matches: dict[int, torch.Tensor] = field(default_factory=dict)
    overlaps: dict[int, torch.Tensor] = field(default_factory=dict)
    negatives: list[int] = field(default_factory=list)


@LAYERS.register("MultiBoxLoss", dialect="ssd")
@final
class MultiBoxLossLayer(LossLayer):
    """SSD's MultiBoxLoss: match priors to ground truth, mine negatives, and sum a localization
    and a confidence loss (the fork's multibox_loss_layer.cpp and util/bbox_util.cpp).

    Forward, per image with ground truth (GetGroundTruth skips item_id -1 rows and, unless
        use_difficult_gt, difficult ones; a background-labelled row is an error):
        * match (FindMatches): priors (use_prior_for_matching, default) or the predictions decoded
          against them, against the ground truth: bipartite first, then for PER_PREDICTION each
          other prior takes its best ground truth with overlap >= overlap_threshold
          (see ``matching.match_boxes``); ignore_cross_boundary_bbox leaves out priors outside
          [0, 1]. Without share_location each class c != background matches its own boxes.
        * mine (MineHardExamples; needs share_location): each prior's confidence loss (softmax
          or logistic against its matched label or the background), plus for HARD_EXAMPLE its
          localization loss; MAX_NEGATIVE picks the int(num_pos · neg_pos_ratio) unmatched priors
          with overlap < neg_overlap of highest loss, HARD_EXAMPLE the sample_size highest of all
          priors (unpicked matches are dropped); with nms_param (threshold > 0) the candidates
          are first thinned by NMS on their loss. Images without ground truth give no negatives.
        * loc loss over the matched priors, in image, label, prior order: SmoothL1 (default) or
          L2 (½ squared error) of prediction − encoded ground truth (code_type; with
          encode_variance_in_target both are divided by the prior variances; bp_inside replaces
          a coordinate whose matched box lies outside [0, 1] by the target).
        * conf loss: mining: the matched priors (labels; background+1 with
          map_object_to_agnostic) then the negatives (background); no mining: every prior of
          every image, unmatched ones labelled background_label_id. Softmax: −log max(p, FLT_MIN)
          summed; logistic: sigmoid cross-entropy summed over rows and classes (without mining the
          fork writes image i's logistic targets at offset i·num_priors, not i·num_priors·C; kept).
        top = loc_weight · loc / normalizer + conf / normalizer, each term only when
        propagate_down of its bottom is true (default true, true, false, false). The normalizer
        (loss_param.normalization, default VALID; normalize: false is BATCH_SIZE): VALID the
        number of matches, FULL N·num_priors, BATCH_SIZE N, NONE 1; at least 1.
    Backward: loc: the loss derivative (SmoothL1: x for |x| < 1 else sign x; L2: x) · loc_weight ·
        top diff / normalizer at the matched predictions, 0 elsewhere (with
        encode_variance_in_target the fork hands on the derivative with respect to
        prediction/variance unscaled, and so does this layer); conf: (softmax − one-hot)
        or (sigmoid − target) · top diff / normalizer at the rows used, 0 elsewhere. No gradient
        to the priors or labels (asking for one is an error, as in the fork).
    Params (multibox_loss_param): num_classes (required), loc_loss_type=SMOOTH_L1,
        conf_loss_type=SOFTMAX, loc_weight=1, share_location=true, match_type=PER_PREDICTION,
        overlap_threshold=0.5, use_prior_for_matching=true, background_label_id=0,
        use_difficult_gt=true, mining_type=MAX_NEGATIVE (do_neg_mining deprecated),
        neg_pos_ratio=3, neg_overlap=0.5, code_type=CORNER, encode_variance_in_target=false,
        map_object_to_agnostic=false, ignore_cross_boundary_bbox=false, bp_inside=false,
        nms_param, sample_size=64, use_prior_for_nms=false. loss_param.normalization.
    Bottoms: loc (N, num_priors·loc_classes·4), conf (N, num_priors·num_classes), priors
        (1, 2, num_priors·4) from PriorBox, ground truth (1, 1, G, 8) from AnnotatedData.
    Tops: loss (scalar).
    In place: no.
    """

    exact_num_bottom_blobs = 4

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        super().layer_setup(bottom, top)
        p = forks.get_dialect("ssd").fork_param(self.param).multibox_loss_param
        self.p = p
        if not p.HasField("num_classes") or p.num_classes < 1:
            raise self.error("multibox_loss_param.num_classes must be given, at least 1")
        self.num_classes = p.num_classes
        self.loc_classes = 1 if p.share_location else self.num_classes
        self.background = p.background_label_id
        self.mining = p.mining_type
        if p.HasField("do_neg_mining") and p.do_neg_mining != (self.mining != p.NONE):
            raise self.error("do_neg_mining (deprecated) contradicts mining_type; give mining_type only")
        if self.mining != p.NONE and not p.share_location:
            raise self.error("negative mining needs share_location: true (as in the fork)")
        if self.mining == p.HARD_EXAMPLE and p.sample_size <= 0:
            raise self.error("mining_type HARD_EXAMPLE needs sample_size > 0")
        if p.conf_loss_type == p.SOFTMAX and not 0 <= self.background < self.num_classes:
            raise self.error(
                f"background_label_id {self.background} must be within [0, num_classes) for Softmax"
            )
        if p.map_object_to_agnostic and self.num_classes != 2:
            raise self.error("map_object_to_agnostic needs num_classes: 2 (background and object)")
        lp = self.param.loss_param
        if not lp.HasField("normalization") and lp.HasField("normalize"):
            self.normalization = Normalization.VALID if lp.normalize else Normalization.BATCH_SIZE
        else:
            self.normalization = lp.normalization
        self.propagate = list(self.param.propagate_down) or [True, True, False, False]

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        self.num = bottom[0].shape[0]
        if bottom[2].count() % 8 or bottom[2].shape[:2] != (1, 2):
            raise self.error(
                f"bottom 2 (priors) must be PriorBox's (1, 2, num_priors·4), got {bottom[2].shape}"
            )
        self.num_priors = bottom[2].count() // 8
        if bottom[1].shape[0] != self.num:
            raise self.error(
                f"loc and conf predictions differ in batch size: {bottom[0].shape} vs {bottom[1].shape}"
            )
        if bottom[0].count(1) != self.num_priors * self.loc_classes * 4:
            raise self.error(
                f"loc predictions {bottom[0].shape} must hold num_priors·{self.loc_classes * 4} "
                f"= {self.num_priors * self.loc_classes * 4} values per image"
            )
        if bottom[1].count(1) != self.num_priors * self.num_classes:
            raise self.error(
                f"conf predictions {bottom[1].shape} must hold num_priors·num_classes "
                f"= {self.num_priors * self.num_classes} values per image"
            )
        if bottom[3].shape[-1] != 8:
            raise self.error(
                f"bottom 3 (ground truth) must have rows of 8 values, got shape {bottom[3].shape}"
            )
        top[0].reshape(())

    # ------------------------------------------------------------------ forward
    def forward(self, bottom: Blobs, top: Blobs) -> None:
        p, num, num_priors = self.p, self.num, self.num_priors
        dtype = bottom[0].data.dtype
        prior_data = bottom[2].data.view(2, num_priors, 4).to("cpu", F32)
        priors, variances = prior_data[0], prior_data[1]
        # the fork holds predictions in NormalizedBBox floats
        loc = bottom[0].data.view(num, num_priors, self.loc_classes, 4).to("cpu", F32)
        conf = bottom[1].data.view(num, num_priors, self.num_classes).cpu()
        self.gt, bad = matching.read_ground_truth(bottom[3].data.reshape(-1, 8).cpu(), self.background,
                                                  p.use_difficult_gt)
        if bad is not None:
            raise self.error(f"ground truth row {bad} has the background label {self.background}")
        self.images = [self._match(i, loc[i], priors, variances) for i in range(num)]
        self.num_matches = sum(int((m > -1).sum()) for image in self.images for m in image.matches.values())
        if self.mining != p.NONE:
            self._mine(conf, loc, priors, variances)  # may drop matches (HARD_EXAMPLE)
        self.divisor = self._divisor()
        loc_loss = self._loc_forward(loc, priors, variances, dtype)
        conf_loss = self._conf_forward(conf)
        total = torch.zeros((), dtype=dtype)
        if self.propagate[0]:
            total = total + p.loc_weight * loc_loss / self.divisor
        if self.propagate[1]:
            total = total + conf_loss / self.divisor
        top[0].data.fill_(float(total))

    def _divisor(self) -> float:
        mode = self.normalization
        if mode == Normalization.FULL:
            value = self.num * self.num_priors
        elif mode == Normalization.VALID:
            value = self.num_matches
        elif mode == Normalization.BATCH_SIZE:
            value = self.num
        elif mode == Normalization.NONE:
            value = 1
        else:
            raise self.error(f"unknown loss_param.normalization {mode}")
        return float(max(1, value))

    def _match(self, item: int, loc: torch.Tensor, priors: torch.Tensor, variances: torch.Tensor) -> _Image:
        p, image = self.p, _Image()
        gt = self.gt.get(item)
        if gt is None:
            return image
        per_prediction = p.match_type == p.PER_PREDICTION
        if p.use_prior_for_matching:
            indices, overlaps = matching.match_boxes(
                gt.boxes, priors, per_prediction, p.overlap_threshold, p.ignore_cross_boundary_bbox
            )
            if p.share_location:
                image.matches[-1], image.overlaps[-1] = indices, overlaps
                return image
            for c in range(self.loc_classes):
                if c == self.background:
                    continue
                own = (indices > -1) & (gt.labels[indices.clamp_min(0)] == c)
                image.matches[c] = torch.where(own, indices, torch.full_like(indices, -1))
                image.overlaps[c] = overlaps
            return image
        for c in range(self.loc_classes):
            label = -1 if p.share_location else c
            if not p.share_location and label == self.background:
                continue
            decoded = bbox.decode(priors, variances, loc[:, c], p.code_type, p.encode_variance_in_target)
            chosen = (
                torch.arange(len(gt.labels)) if label == -1 else torch.nonzero(gt.labels == label).flatten()
            )
            indices, overlaps = matching.match_boxes(
                gt.boxes[chosen], decoded, per_prediction, p.overlap_threshold, p.ignore_cross_boundary_bbox
            )
            image.matches[label] = torch.where(indices > -1, chosen[indices.clamp_min(0)], indices)
            image.overlaps[label] = overlaps
        return image

    def _prior_labels(self, item: int) -> torch.Tensor:
        """The label each prior of image ``item`` is scored against (ComputeConfLoss)."""
        labels = torch.full((self.num_priors,), self.background, dtype=torch.int64)
        gt = self.gt.get(item)
        matches = self.images[item].matches
        for indices in reversed([matches[label] for label in sorted(matches)]):  # the first label wins
            matched = indices > -1
            if gt is not None:
                labels[matched] = gt.labels[indices[matched]]
        return labels

    def _mine(
        self, conf: torch.Tensor, loc: torch.Tensor, priors: torch.Tensor, variances: torch.Tensor
    ) -> None:
        p = self.p
        for item, image in enumerate(self.images):
            if not image.matches:
                continue
            losses = self._prior_conf_losses(conf[item], self._prior_labels(item)).to(F32)
            if self.mining == p.HARD_EXAMPLE:
                losses = losses + self._prior_loc_losses(item, loc, priors, variances)
            for label in sorted(image.matches):
                indices, overlaps = image.matches[label], image.overlaps[label]
                if self.mining == p.MAX_NEGATIVE:
                    eligible = (indices == -1) & (overlaps < p.neg_overlap)
                    wanted = int(float(torch.tensor(int((indices > -1).sum()), dtype=F32) * p.neg_pos_ratio))
                else:
                    eligible = torch.ones_like(indices, dtype=torch.bool)
                    wanted = p.sample_size
                candidates = torch.nonzero(eligible).flatten()
                wanted = min(wanted, len(candidates))
                if p.HasField("nms_param") and p.nms_param.nms_threshold > 0:
                    boxes = (
                        priors
                        if p.use_prior_for_nms
                        else bbox.decode(
                            priors, variances, loc[item][:, 0], p.code_type, p.encode_variance_in_target
                        )
                    )
                    kept = matching.nms_by_loss(
                        boxes[candidates], losses[candidates], p.nms_param.nms_threshold, p.nms_param.top_k
                    )
                    picked = set(candidates[kept[:wanted]].tolist())
                else:
                    order = torch.sort(losses[candidates], descending=True, stable=True).indices
                    picked = set(candidates[order[:wanted]].tolist())
                if self.mining == p.HARD_EXAMPLE:
                    dropped = (indices > -1) & ~torch.isin(
                        torch.arange(len(indices)), torch.tensor(sorted(picked), dtype=torch.int64)
                    )
                    self.num_matches -= int(dropped.sum())
                    indices[dropped] = -1
                negatives = [m for m in sorted(picked) if int(indices[m]) == -1]
                image.negatives.extend(negatives)

    def _prior_conf_losses(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.p.conf_loss_type == self.p.SOFTMAX:
            return matching.softmax_losses(scores, labels)
        targets = torch.nn.functional.one_hot(labels, self.num_classes).to(scores.dtype)
        return matching.logistic_losses(scores, targets)

    def _prior_loc_losses(
        self, item: int, loc: torch.Tensor, priors: torch.Tensor, variances: torch.Tensor
    ) -> torch.Tensor:
        """Each matched prior's loc loss (ComputeLocLoss), 0 for the others."""
        out = torch.zeros(self.num_priors, dtype=F32)
        for label, indices in self.images[item].matches.items():
            where = torch.nonzero(indices > -1).flatten()
            if not len(where):
                continue
            pred, target = self._encoded(item, label, where, loc, priors, variances, loc.dtype)
            diff = pred - target
            per = matching.smooth_l1(diff) if self.p.loc_loss_type == self.p.SMOOTH_L1 else 0.5 * diff * diff
            out[where] = per.sum(-1).to(F32)
        return out

    def _encoded(
        self,
        item: int,
        label: int,
        where: torch.Tensor,
        loc: torch.Tensor,
        priors: torch.Tensor,
        variances: torch.Tensor,
        dtype: torch.dtype,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """EncodeLocPrediction for the priors ``where`` matched under ``label`` in image ``item``."""
        p = self.p
        gt = self.gt[item]
        column = 0 if p.share_location else label
        prior, var = priors[where], variances[where]
        target = matching.encode(
            prior,
            var,
            gt.boxes[self.images[item].matches[label][where]],
            p.code_type,
            p.encode_variance_in_target,
        )
        pred = loc[item][where, column]
        if p.bp_inside:
            box = (
                prior
                if p.use_prior_for_matching
                else bbox.decode(prior, var, pred, p.code_type, p.encode_variance_in_target)
            )
            outside = (box < 0) | (box > 1)
            pred = torch.where(outside, target, pred)
        pred, target = pred.to(dtype), target.to(dtype)
        if p.encode_variance_in_target:
            pred, target = pred / var.to(dtype), target / var.to(dtype)
        return pred, target

    def _loc_forward(
        self, loc: torch.Tensor, priors: torch.Tensor, variances: torch.Tensor, dtype: torch.dtype
    ) -> torch.Tensor:
        self.loc_slots: list[
            tuple[int, int, torch.Tensor]
        ] = []  # (image, column, priors) in the fork's order
        diffs = []
        for item, image in enumerate(self.images):
            for label in sorted(image.matches):
                where = torch.nonzero(image.matches[label] > -1).flatten()
                if not len(where):
                    continue
                pred, target = self._encoded(item, label, where, loc, priors, variances, dtype)
                diffs.append(pred - target)
                self.loc_slots.append((item, 0 if self.p.share_location else label, where))
        self.loc_diff = torch.cat(diffs) if diffs else torch.zeros((0, 4), dtype=dtype)
        if self.p.loc_loss_type == self.p.SMOOTH_L1:
            return matching.smooth_l1(self.loc_diff).sum()
        return 0.5 * (self.loc_diff * self.loc_diff).sum()

    def _conf_forward(self, conf: torch.Tensor) -> torch.Tensor:
        p = self.p
        if self.mining != p.NONE:
            rows, labels = [], []
            for item, image in enumerate(self.images):
                if item not in self.gt:
                    continue
                for label in sorted(image.matches):
                    where = torch.nonzero(image.matches[label] > -1).flatten()
                    rows.append(item * self.num_priors + where)
                    labels.append(self._gt_labels(item, image.matches[label][where]))
                negatives = torch.tensor(image.negatives, dtype=torch.int64)
                rows.append(item * self.num_priors + negatives)
                labels.append(torch.full((len(negatives),), self.background, dtype=torch.int64))
            self.conf_rows = torch.cat(rows) if rows else torch.zeros(0, dtype=torch.int64)
            row_labels = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.int64)
            scores = conf.reshape(-1, self.num_classes)[self.conf_rows]
            if p.conf_loss_type == p.SOFTMAX:
                self.conf_targets: Any = row_labels
            else:  # the fork fills the targets with background_label_id, then sets the ones
                targets = torch.full_like(scores, float(self.background))
                hit = (row_labels >= 0) & (row_labels < self.num_classes)
                targets[hit.nonzero().flatten(), row_labels[hit]] = 1
                self.conf_targets = targets
        else:
            self.conf_rows = torch.arange(self.num * self.num_priors)
            scores = conf.reshape(-1, self.num_classes)
            if p.conf_loss_type == p.SOFTMAX:
                labels_flat = torch.full((len(self.conf_rows),), self.background, dtype=torch.int64)
                for item, image in enumerate(self.images):
                    if item not in self.gt:
                        continue
                    for label in sorted(image.matches):
                        where = torch.nonzero(image.matches[label] > -1).flatten()
                        labels_flat[item * self.num_priors + where] = self._gt_labels(
                            item, image.matches[label][where]
                        )
                self.conf_targets = labels_flat
            else:
                flat = torch.full((scores.numel(),), float(self.background), dtype=scores.dtype)
                for item, image in enumerate(self.images):
                    if item not in self.gt:
                        continue
                    for label in sorted(image.matches):
                        where = torch.nonzero(image.matches[label] > -1).flatten()
                        gt_labels = self._gt_labels(item, image.matches[label][where])
                        flat[item * self.num_priors + where * self.num_classes + gt_labels] = 1
                self.conf_targets = flat.view_as(scores)
        if not len(self.conf_rows):
            return torch.zeros((), dtype=conf.dtype)
        if p.conf_loss_type == p.SOFTMAX:
            return matching.softmax_losses(scores, self.conf_targets).sum()
        return matching.logistic_losses(scores, self.conf_targets).sum()

    def _gt_labels(self, item: int, gt_indices: torch.Tensor) -> torch.Tensor:
        if self.p.map_object_to_agnostic:
            return torch.full_like(gt_indices, self.background + 1)
        return self.gt[item].labels[gt_indices]

    # ----------------------------------------------------------------- backward
    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if propagate_down[2]:
            raise self.error(
                "cannot backpropagate to the prior inputs (bottom 2); give propagate_down: true "
                "true false false as SSD's nets do"
            )
        if propagate_down[3]:
            raise self.error("cannot backpropagate to the label inputs (bottom 3)")
        scale = float(top[0].diff) / self.divisor
        if propagate_down[0]:
            self._loc_backward(bottom[0], scale)
        if propagate_down[1]:
            self._conf_backward(bottom[1], scale)

    def _loc_backward(self, blob: Any, scale: float) -> None:
        p = self.p
        blob.diff.zero_()
        if not self.loc_slots:
            return
        diff = self.loc_diff
        grad = matching.smooth_l1_grad(diff) if p.loc_loss_type == p.SMOOTH_L1 else diff
        grad = grad * (p.loc_weight * scale)  # with encode_variance_in_target: d/d(pred/var), as the fork
        view = blob.diff.view(self.num, self.num_priors, self.loc_classes, 4)
        start = 0
        for item, column, where in self.loc_slots:
            view[item, where.to(view.device), column] = grad[start : start + len(where)].to(
                view.device, view.dtype
            )
            start += len(where)

    def _conf_backward(self, blob: Any, scale: float) -> None:
        p = self.p
        blob.diff.zero_()
        if not len(self.conf_rows):
            return
        scores = blob.data.reshape(-1, self.num_classes)[self.conf_rows.to(blob.data.device)].cpu()
        if p.conf_loss_type == p.SOFTMAX:
            grad = torch.softmax(scores, -1)
            grad[torch.arange(len(grad)), self.conf_targets] -= 1
        else:
            grad = torch.sigmoid(scores) - self.conf_targets
        view = blob.diff.view(-1, self.num_classes)
        view[self.conf_rows.to(view.device)] = (grad * scale).to(view.device, view.dtype)
