"""SSD's MultiBoxLoss against references written from the fork's C++ (multibox_loss_layer.cpp,
util/bbox_util.cpp: MatchBBox, MineHardExamples, EncodeBBox, EncodeLocPrediction,
EncodeConfPrediction), with autograd and numeric gradient checks (LayerCase)."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
import torch

from recaffe import forks
from recaffe.blob import Blob
from recaffe.forks.ssd import matching
from recaffe.layer import LayerError
from recaffe.proto import caffe_pb2
from recaffe.testing.gradient_check import GradientChecker
from recaffe.testing.layer_case import LayerCase, Tensors
from tests.forks.ssd.test_layers import build_and_run

SSD = forks.get_dialect("ssd")
CELLS, SIZES = 4, (0.3, 0.55)
NMS = "nms_param { nms_threshold: 0.5 }"
NUM_PRIORS = CELLS * CELLS * len(SIZES)
NUM_CLASSES = 3
# [item, label, instance, xmin, ymin, xmax, ymax, difficult]; image 2 has no ground truth
GT = [
    [0, 1, 0, 0.10, 0.10, 0.45, 0.50, 0],
    [0, 2, 0, 0.50, 0.55, 0.90, 0.95, 0],
    [1, 2, 0, 0.20, 0.30, 0.70, 0.60, 0],
    [1, 1, 0, 0.60, 0.00, 0.95, 0.30, 1],
    [-1, 0, 0, 0, 0, 0, 0, 0],
]


def grid_priors() -> torch.Tensor:
    boxes = []
    for h in range(CELLS):
        for w in range(CELLS):
            cx, cy = (w + 0.5) / CELLS, (h + 0.5) / CELLS
            boxes += [[cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2] for s in SIZES]
    priors = torch.tensor(boxes, dtype=torch.float32)
    variances = torch.tensor([0.1, 0.1, 0.2, 0.2]).expand(NUM_PRIORS, 4)
    return torch.stack([priors, variances]).reshape(1, 2, -1)


def fork(param: caffe_pb2.LayerParameter) -> Any:
    return SSD.fork_param(param)


def mbl(extra: str = "", loss: str = "") -> str:
    return f"multibox_loss_param {{ num_classes: {NUM_CLASSES} {extra} }} {loss}"


class TestMultiBoxLoss(LayerCase):
    layer_type = "MultiBoxLoss"
    dialect = "ssd"
    params = [
        mbl(),
        mbl("code_type: CENTER_SIZE"),
        mbl("mining_type: NONE loc_loss_type: L2"),
        mbl("mining_type: NONE conf_loss_type: LOGISTIC code_type: CORNER_SIZE"),
        mbl("conf_loss_type: LOGISTIC neg_pos_ratio: 2"),
        mbl("match_type: BIPARTITE use_difficult_gt: false loc_weight: 2"),
        mbl("mining_type: HARD_EXAMPLE sample_size: 6"),
        mbl("share_location: false mining_type: NONE"),
        mbl("use_prior_for_matching: false code_type: CENTER_SIZE bp_inside: true"),
        mbl("", "loss_param { normalization: FULL }"),
        mbl("mining_type: NONE", "loss_param { normalize: false }"),
        "multibox_loss_param { num_classes: 2 map_object_to_agnostic: true }",
        mbl("code_type: CENTER_SIZE encode_variance_in_target: true"),
        mbl("ignore_cross_boundary_bbox: true neg_pos_ratio: 5"),
        mbl("nms_param { nms_threshold: 0.3 top_k: 20 }"),
        mbl("mining_type: HARD_EXAMPLE sample_size: 10 use_prior_for_nms: true " + NMS),
    ]
    bottom_shapes = [(3, NUM_PRIORS * 4), (3, NUM_PRIORS * NUM_CLASSES), (1, 2, NUM_PRIORS * 4), (1, 1, 5, 8)]
    check_bottoms = [0, 1]
    numeric_cases = [params[0], params[3]]

    def test_gradient_numeric(self, case: str) -> None:
        """Caffe's GradientChecker on 24 sampled elements of each of loc and conf (for time)."""
        layer, bottom, top = self.build(case, torch.float64)
        checker = GradientChecker(self.stepsize, self.threshold, max_checks_per_blob=24)
        checker.check(layer, bottom, top, [0, 1], [0])

    def make_bottoms(self, param: caffe_pb2.LayerParameter, generator: torch.Generator) -> list[torch.Tensor]:
        p = fork(param).multibox_loss_param
        loc_classes = 1 if p.share_location else p.num_classes
        gt = torch.tensor(GT, dtype=torch.float64)
        if p.map_object_to_agnostic:
            gt[:, 1] = gt[:, 1].clamp(max=1)
        return [
            0.5 * torch.randn(3, NUM_PRIORS * loc_classes * 4, generator=generator, dtype=torch.float64),
            torch.randn(3, NUM_PRIORS * p.num_classes, generator=generator, dtype=torch.float64),
            grid_priors().double(),
            gt.view(1, 1, 5, 8),
        ]

    def reference(self, bottoms: Tensors, blobs: Tensors, param: caffe_pb2.LayerParameter) -> Tensors:
        """The fork's sums over the layer's own matches and mined negatives (checked separately)."""
        layer = self.layer
        p = fork(param).multibox_loss_param
        num = bottoms[0].shape[0]
        loc_classes = 1 if p.share_location else p.num_classes
        loc = bottoms[0].float().double().view(num, NUM_PRIORS, loc_classes, 4)
        conf = bottoms[1].view(num, NUM_PRIORS, p.num_classes)
        priors, variances = bottoms[2].view(2, NUM_PRIORS, 4).float()
        loc_terms, conf_terms = [], []
        mining = p.mining_type != p.NONE
        for item, image in enumerate(layer.images):
            gt = layer.gt.get(item)
            labels = torch.full((NUM_PRIORS,), p.background_label_id, dtype=torch.int64)
            for label in sorted(image.matches):
                indices = image.matches[label]
                for j in torch.nonzero(indices > -1).flatten().tolist():
                    assert gt is not None
                    target = matching.encode(
                        priors[j : j + 1],
                        variances[j : j + 1],
                        gt.boxes[indices[j]][None],
                        p.code_type,
                        p.encode_variance_in_target,
                    )[0].double()
                    pred = loc[item, j, 0 if p.share_location else label]
                    if p.bp_inside:
                        decoded = bbox_decode(priors[j], variances[j], pred.detach().float(), p)
                        pred = torch.where((decoded < 0) | (decoded > 1), target, pred)
                    if (
                        p.encode_variance_in_target
                    ):  # divided by the variances; the gradient is not (as the fork)
                        var = variances[j].double()
                        pred = pred + (pred / var - pred).detach()
                        target = target / var
                    diff = pred - target
                    if p.loc_loss_type == p.SMOOTH_L1:
                        loc_terms.append(torch.where(diff.abs() < 1, 0.5 * diff**2, diff.abs() - 0.5).sum())
                    else:
                        loc_terms.append(0.5 * (diff**2).sum())
                    agnostic = (
                        p.background_label_id + 1 if p.map_object_to_agnostic else int(gt.labels[indices[j]])
                    )
                    labels[j] = agnostic
                    if mining:
                        conf_terms.append(row_loss(conf[item, j], agnostic, p))
            if mining:
                for j in image.negatives:
                    conf_terms.append(row_loss(conf[item, j], p.background_label_id, p))
            elif p.conf_loss_type == p.SOFTMAX:
                conf_terms += [row_loss(conf[item, j], int(labels[j]), p) for j in range(NUM_PRIORS)]
        if not mining and p.conf_loss_type == p.LOGISTIC:  # targets at the fork's offsets (see the layer)
            flat = torch.full(
                (num * NUM_PRIORS * p.num_classes,), float(p.background_label_id), dtype=torch.float64
            )
            for item, image in enumerate(layer.images):
                for label in sorted(image.matches):
                    for j in torch.nonzero(image.matches[label] > -1).flatten().tolist():
                        flat[
                            item * NUM_PRIORS
                            + j * p.num_classes
                            + int(layer.gt[item].labels[image.matches[label][j]])
                        ] = 1
            x = conf.reshape(-1)
            conf_terms.append(torch.nn.functional.binary_cross_entropy_with_logits(x, flat, reduction="sum"))
        normalization = param.loss_param.normalization
        if not param.loss_param.HasField("normalization") and param.loss_param.HasField("normalize"):
            normalization = (
                caffe_pb2.LossParameter.VALID
                if param.loss_param.normalize
                else caffe_pb2.LossParameter.BATCH_SIZE
            )
        normalizer = {
            caffe_pb2.LossParameter.VALID: len(loc_terms),
            caffe_pb2.LossParameter.FULL: num * NUM_PRIORS,
            caffe_pb2.LossParameter.BATCH_SIZE: num,
            caffe_pb2.LossParameter.NONE: 1,
        }[normalization]
        normalizer = max(1, normalizer)
        zero = bottoms[0].sum() * 0
        loc_loss = torch.stack(loc_terms).sum() if loc_terms else zero
        conf_loss = torch.stack(conf_terms).sum() if conf_terms else zero
        return (p.loc_weight * loc_loss / normalizer + conf_loss / normalizer + 0 * bottoms[1].sum(),)


def bbox_decode(prior: torch.Tensor, var: torch.Tensor, pred: torch.Tensor, p: Any) -> torch.Tensor:
    from recaffe.forks.ssd import bbox

    return bbox.decode(prior[None], var[None], pred[None], p.code_type, p.encode_variance_in_target)[
        0
    ].double()


def row_loss(scores: torch.Tensor, label: int, p: Any) -> torch.Tensor:
    if p.conf_loss_type == p.SOFTMAX:
        return -torch.log_softmax(scores, -1)[label]
    target = torch.full_like(scores, float(p.background_label_id))  # the fork's fill
    if 0 <= label < len(scores):
        target[label] = 1
    return torch.nn.functional.binary_cross_entropy_with_logits(scores, target, reduction="sum")


# ----------------------------------------------------------------------------- matching
def match_loops(
    gt: list[list[float]], preds: list[list[float]], per_prediction: bool, threshold: float
) -> tuple[list[int], list[float]]:
    """MatchBBox, loop for loop (float32 overlaps from the layer's own pairwise Jaccard)."""
    overlap_table = matching.pairwise_jaccard(torch.tensor(preds), torch.tensor(gt)).tolist()
    indices, best = [-1] * len(preds), [0.0] * len(preds)
    overlaps: dict[int, dict[int, float]] = {}
    for i in range(len(preds)):
        for j in range(len(gt)):
            if overlap_table[i][j] > 1e-6:
                best[i] = max(best[i], overlap_table[i][j])
                overlaps.setdefault(i, {})[j] = overlap_table[i][j]
    pool = list(range(len(gt)))
    while pool:
        max_i, max_j, max_overlap = -1, -1, -1.0
        for i in sorted(overlaps):
            if indices[i] != -1:
                continue
            for j in pool:
                if j in overlaps[i] and overlaps[i][j] > max_overlap:
                    max_i, max_j, max_overlap = i, j, overlaps[i][j]
        if max_i == -1:
            break
        indices[max_i], best[max_i] = max_j, max_overlap
        pool.remove(max_j)
    if per_prediction:
        for i in sorted(overlaps):
            if indices[i] != -1:
                continue
            max_j, max_overlap = -1, -1.0
            for j in range(len(gt)):
                if j in overlaps[i] and overlaps[i][j] >= threshold and overlaps[i][j] > max_overlap:
                    max_j, max_overlap = j, overlaps[i][j]
            if max_j != -1:
                indices[i], best[i] = max_j, max_overlap
    return indices, best


@pytest.mark.parametrize("per_prediction", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_match_boxes_equals_the_forks_loops(per_prediction: bool, seed: int) -> None:
    rand = random.Random(seed)

    def box() -> list[float]:
        x, y = rand.uniform(0, 0.8), rand.uniform(0, 0.8)
        return [x, y, x + rand.uniform(0.05, 0.4), y + rand.uniform(0.05, 0.4)]

    gt = [box() for _ in range(5)]
    preds = [box() for _ in range(60)] + [list(gt[0])]  # an exact tie with ground truth
    indices, best = matching.match_boxes(torch.tensor(gt), torch.tensor(preds), per_prediction, 0.3, False)
    want_indices, want_best = match_loops(gt, preds, per_prediction, 0.3)
    assert indices.tolist() == want_indices
    assert best.tolist() == pytest.approx(want_best, abs=0)


def test_match_ignores_cross_boundary_priors() -> None:
    gt = torch.tensor([[0.0, 0.0, 0.5, 0.5]])
    preds = torch.tensor([[-0.1, 0.0, 0.5, 0.5], [0.0, 0.0, 0.4, 0.5]])
    indices, _ = matching.match_boxes(gt, preds, True, 0.5, True)
    assert indices.tolist() == [-2, 0]


def test_encode_center_size_equals_the_forks_formula() -> None:
    prior, var, box = [0.2, 0.3, 0.6, 0.5], [0.1, 0.1, 0.2, 0.2], [0.25, 0.2, 0.7, 0.65]
    got = matching.encode(torch.tensor([prior]), torch.tensor([var]), torch.tensor([box]), 2, False)[0]
    pw, ph = prior[2] - prior[0], prior[3] - prior[1]
    bw, bh = box[2] - box[0], box[3] - box[1]
    want = [
        ((box[0] + box[2]) / 2 - (prior[0] + prior[2]) / 2) / pw / var[0],
        ((box[1] + box[3]) / 2 - (prior[1] + prior[3]) / 2) / ph / var[1],
        math.log(bw / pw) / var[2],
        math.log(bh / ph) / var[3],
    ]
    assert got.tolist() == pytest.approx(want, rel=1e-5)


# ------------------------------------------------------------------------------ mining
def build(snippet: str, bottoms: list[torch.Tensor]) -> tuple[Any, list[Blob], list[Blob]]:
    return build_and_run("MultiBoxLoss", snippet, bottoms, name="mbl")


def test_max_negative_picks_the_highest_background_losses() -> None:
    # one ground truth that exactly equals prior 0; priors 1..31 are unmatched
    priors = grid_priors()
    box = priors.view(2, -1, 4)[0, 0].tolist()
    gt = torch.tensor([[0, 1, 0, *box, 0]], dtype=torch.float32).view(1, 1, 1, 8)
    conf = torch.zeros(1, NUM_PRIORS, NUM_CLASSES)
    conf[0, :, 2] = torch.arange(NUM_PRIORS, dtype=torch.float32) / 10  # larger index: less background
    layer, _, top = build(mbl(), [torch.zeros(1, NUM_PRIORS * 4), conf.view(1, -1), priors, gt])
    positives = torch.nonzero(layer.images[0].matches[-1] > -1).flatten().tolist()
    overlaps = layer.images[0].overlaps[-1]
    eligible = [j for j in range(NUM_PRIORS) if j not in positives and float(overlaps[j]) < 0.5]
    want = sorted(sorted(eligible, key=lambda j: -j)[: 3 * len(positives)])
    assert layer.images[0].negatives == want
    assert layer.num_matches == len(positives)


def test_background_ground_truth_is_an_error() -> None:
    gt = torch.tensor([[0, 0, 0, 0.1, 0.1, 0.5, 0.5, 0]]).view(1, 1, 1, 8)
    with pytest.raises(LayerError, match="background label"):
        build(
            mbl(),
            [torch.zeros(1, NUM_PRIORS * 4), torch.zeros(1, NUM_PRIORS * NUM_CLASSES), grid_priors(), gt],
        )


def test_no_ground_truth_gives_no_loss_with_mining() -> None:
    gt = torch.full((1, 1, 1, 8), -1.0)
    layer, _, top = build(
        mbl(), [torch.zeros(1, NUM_PRIORS * 4), torch.randn(1, NUM_PRIORS * NUM_CLASSES), grid_priors(), gt]
    )
    assert float(top[0].data) == 0 and layer.num_matches == 0


def test_gradient_to_priors_is_refused() -> None:
    gt = torch.tensor([GT], dtype=torch.float32).view(1, 1, 5, 8)
    layer, bottom, top = build(
        mbl(), [torch.zeros(3, NUM_PRIORS * 4), torch.zeros(3, NUM_PRIORS * NUM_CLASSES), grid_priors(), gt]
    )
    with pytest.raises(LayerError, match="prior"):
        layer.run_backward(top, [True, True, True, False], bottom)


def test_propagate_down_false_leaves_the_loc_term_out() -> None:
    gt = torch.tensor([GT], dtype=torch.float32).view(1, 1, 5, 8)
    loc = torch.randn(3, NUM_PRIORS * 4)
    conf = torch.randn(3, NUM_PRIORS * NUM_CLASSES)
    _, _, full = build(mbl(), [loc, conf, grid_priors(), gt])
    _, _, conf_only = build(
        mbl() + " propagate_down: false propagate_down: true propagate_down: false propagate_down: false",
        [loc, conf, grid_priors(), gt],
    )
    _, _, loc_zero = build(mbl("loc_weight: 0"), [loc, conf, grid_priors(), gt])
    assert float(conf_only[0].data) == pytest.approx(float(loc_zero[0].data))
    assert float(full[0].data) > float(conf_only[0].data)
