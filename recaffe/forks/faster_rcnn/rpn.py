"""The RPN's proposals: anchors moved by the predicted deltas, clipped, ranked, NMS'd.

Two flavours share this code: py-faster-rcnn's Python layer ``rpn.proposal_layer.ProposalLayer``
(the stand-in below) and OpenCV dnn's built-in ``Proposal`` type (``proposal.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recaffe.blob import Blob as NativeBlob
from recaffe.forks.faster_rcnn import boxes, config
from recaffe.forks.faster_rcnn.python_layer import BuiltinPythonLayer, put


@dataclass(frozen=True)
class Ranking:
    """How proposals are cut and ranked: py-faster-rcnn's (``opencv=False``) or OpenCV's."""

    pre_nms_topn: int
    post_nms_topn: int
    nms_thresh: float
    min_size: float | None  # in input pixels (times im_info's scale); None: no size filter
    opencv: bool


def proposals(scores: torch.Tensor, deltas: torch.Tensor, im_info: torch.Tensor, anchors: np.ndarray,
              stride: float, ranking: Ranking, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(boxes (R, 4), scores (R,)) of one image from the RPN's outputs.

    ``scores`` (1, 2A, H, W): background then foreground probabilities of the A anchors;
    ``deltas`` (1, 4A, H, W); ``im_info`` (1, ≥2): image height, width [, scale].
    py-faster-rcnn: clip to [0, width − 1]×[0, height − 1], drop boxes smaller than
    min_size·scale, rank by score (numpy's argsort()[::-1], made stable), keep pre_nms_topn
    (0: all), NMS suppressing at overlap >= nms_thresh, keep post_nms_topn (0: all).
    OpenCV: clip to the integer image size − 1, no size filter, rank by score (stable, ties in
    index order), keep pre_nms_topn, NMS suppressing at overlap > nms_thresh (boxes whose corners
    do not reach each other overlap by 0), keep post_nms_topn.
    """
    count = anchors.shape[0]
    if scores.dim() != 4 or scores.shape[0] != 1 or scores.shape[1] != 2 * count:
        raise ValueError(f"{where}: scores (bottom 0) must be 1×{2 * count}×H×W (background and foreground "
                         f"of {count} anchors, one image), got {list(scores.shape)}")
    height, width = scores.shape[2], scores.shape[3]
    if list(deltas.shape) != [1, 4 * count, height, width]:
        raise ValueError(f"{where}: box deltas (bottom 1) must be 1×{4 * count}×{height}×{width}, "
                         f"got {list(deltas.shape)}")
    info = im_info.reshape(-1).tolist()
    if len(info) < 2 or (ranking.min_size is not None and len(info) < 3):
        raise ValueError(f"{where}: im_info (bottom 2) must hold (height, width, scale), got {info}")
    foreground = scores[0, count:].permute(1, 2, 0).reshape(-1)
    moves = deltas[0].permute(1, 2, 0).reshape(-1, 4)
    every = boxes.shifted_anchors(anchors, height, width, stride, scores.device)
    found = boxes.bbox_transform_inv(every, moves)
    if ranking.opencv:
        found = boxes.clip_boxes(found, float(int(info[0])), float(int(info[1])))
        order = torch.sort(foreground, descending=True, stable=True).indices
        if ranking.pre_nms_topn > 0:
            order = order[: ranking.pre_nms_topn]
        kept = boxes.greedy_nms(found, order, ranking.nms_thresh, ranking.post_nms_topn,
                                suppress_equal=False, gap_overlaps=False)
        return found[kept], foreground[kept]
    im = torch.tensor(info[:3] if len(info) >= 3 else info, dtype=torch.float32)
    found = boxes.clip_boxes(found, float(im[0]), float(im[1]))
    if ranking.min_size is not None:
        least = (torch.tensor(ranking.min_size, dtype=torch.float32) * im[2]).to(found.device)
        widths, heights = found[:, 2] - found[:, 0] + 1, found[:, 3] - found[:, 1] + 1
        big = torch.nonzero((widths >= least) & (heights >= least)).flatten()
        found, foreground = found[big], foreground[big]
    order = boxes.descending(foreground)
    if ranking.pre_nms_topn > 0:
        order = order[: ranking.pre_nms_topn]
    found, foreground = found[order], foreground[order]
    kept = boxes.nms(found, foreground, ranking.nms_thresh, ranking.post_nms_topn)
    return found[kept], foreground[kept]


def write_rois(found: torch.Tensor, scores: torch.Tensor, top: list[NativeBlob]) -> None:
    """rois (R, 5: image 0, x1, y1, x2, y2) to top 0, scores (R, 1) to top 1 if present."""
    rois = torch.cat([torch.zeros_like(found[:, :1]), found], dim=1)
    put(top[0], rois)
    if len(top) > 1:
        put(top[1], scores.reshape(-1, 1))


def anchor_scales(params: dict[str, object], where: str) -> np.ndarray:
    """The anchors of a py-faster-rcnn layer's param_str (``scales``, default 8, 16, 32)."""
    scales = params.get("scales", (8, 16, 32))
    if not isinstance(scales, (list, tuple)) or not scales or not all(
            isinstance(s, (int, float)) and s > 0 for s in scales):
        raise ValueError(f"{where}: param_str 'scales' must be a list of positive numbers, got {scales!r}")
    return boxes.generate_anchors(scales=[float(s) for s in scales])


def feat_stride(params: dict[str, object], where: str) -> float:
    stride = params["feat_stride"]
    if not isinstance(stride, (int, float)) or stride <= 0:
        raise ValueError(f"{where}: param_str 'feat_stride' must be a positive number, got {stride!r}")
    return float(stride)


class ProposalLayer(BuiltinPythonLayer):
    """Stand-in for py-faster-rcnn's ``rpn.proposal_layer.ProposalLayer`` (lib/rpn/proposal_layer.py).

    Forward: the proposals of one image (``proposals`` above, py-faster-rcnn's flavour) with
        RPN_PRE_NMS_TOP_N, RPN_POST_NMS_TOP_N, RPN_NMS_THRESH, RPN_MIN_SIZE from the config's
        TRAIN or TEST section by the layer's phase (``config.current()``); the compiled NMS is
        ``boxes.nms``. No backward.
    param_str: 'feat_stride' (required), 'scales' (anchor scales, default [8, 16, 32]).
    Bottoms: rpn_cls_prob_reshape (1×2A×H×W), rpn_bbox_pred (1×4A×H×W), im_info (1×3).
    Tops: rois (R×5: 0, x1, y1, x2, y2) [, scores (R×1)].
    """

    required = ("feat_stride",)
    num_bottoms = 3
    num_tops = (1, 2)

    def layer_setup(self, bottom: list[NativeBlob], top: list[NativeBlob]) -> None:
        where = f"layer {self.layer_name!r}"
        self.stride = feat_stride(self.params, where)
        self.anchors = anchor_scales(self.params, where)
        top[0].reshape(1, 5)
        if len(top) > 1:
            top[1].reshape(1, 1)

    def run(self, bottom: list[NativeBlob], top: list[NativeBlob]) -> None:
        section = config.phase_section(self.phase)
        ranking = Ranking(int(section.RPN_PRE_NMS_TOP_N), int(section.RPN_POST_NMS_TOP_N),
                          float(section.RPN_NMS_THRESH), float(section.RPN_MIN_SIZE), opencv=False)
        found, scores = proposals(bottom[0].data, bottom[1].data, bottom[2].data, self.anchors,
                                  self.stride, ranking, f"layer {self.layer_name!r}")
        write_rois(found, scores, top)
