from __future__ import annotations

from typing import final

from recaffe import forks
from recaffe.forks.faster_rcnn import boxes, rpn
from recaffe.layer import Blobs, Layer
from recaffe.registry import LAYERS


@LAYERS.register("Proposal", dialect="faster_rcnn")
@final
class ProposalLayer(Layer):
    """OpenCV dnn's built-in ``Proposal`` layer (modules/dnn/src/layers/proposal_layer.cpp): the
    RPN proposal layer of py-faster-rcnn's test nets without Python, as OpenCV computes it.

    Forward: anchors (``ratio`` × ``scale`` around a base_size window, OpenCV's rounding) at
        every feat_stride cell, moved by the deltas, clipped to the image (im_info's integer
        height and width − 1), ranked by foreground score (ties in index order), cut to
        pre_nms_topn, greedy NMS keeping a box whose overlap with every kept one is
        <= nms_thresh, cut to post_nms_topn (``rpn.proposals``, OpenCV flavour).
        ``min_size`` is read but not applied, as in OpenCV (py-faster-rcnn's Python layer
        applies RPN_MIN_SIZE). The tops hold the R <= post_nms_topn proposals found (OpenCV's
        blob always has post_nms_topn rows; rows past R are not written there).
    Backward: none (no gradients to the scores or deltas).
    Params (proposal_param): feat_stride=16, base_size=16, min_size=16 (unused), ratio (default
        0.5, 1, 2), scale (default 8, 16, 32), pre_nms_topn=6000, post_nms_topn=300,
        nms_thresh=0.7.
    Bottoms: scores (1×2A×H×W: background, then foreground), deltas (1×4A×H×W), im_info (1×3).
    Tops: rois (R×5: 0, x1, y1, x2, y2) [, scores (R×1)].
    In place: no.
    """

    exact_num_bottom_blobs = 3
    min_top_blobs = 1
    max_top_blobs = 2

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = forks.get_dialect("faster_rcnn").fork_param(self.param).proposal_param
        if p.feat_stride == 0 or p.base_size == 0:
            raise self.error("proposal_param.feat_stride and base_size must be > 0")
        if not 0 <= p.nms_thresh <= 1:
            raise self.error(f"proposal_param.nms_thresh must be in [0, 1], got {p.nms_thresh}")
        ratios = list(p.ratio) or [0.5, 1.0, 2.0]
        scales = list(p.scale) or [8.0, 16.0, 32.0]
        if any(v <= 0 for v in ratios + scales):
            raise self.error(f"proposal_param.ratio and scale must be > 0, got {ratios} and {scales}")
        self.anchors = boxes.generate_anchors(p.base_size, ratios, scales, opencv=True)
        self.stride = float(p.feat_stride)
        self.ranking = rpn.Ranking(p.pre_nms_topn, p.post_nms_topn, p.nms_thresh, None, opencv=True)

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        count = self.anchors.shape[0]
        if bottom[0].num_axes != 4 or bottom[0].shape[1] != 2 * count:
            raise self.error(f"scores (bottom 0) must be N×{2 * count}×H×W for {count} anchors, "
                             f"got {bottom[0].shape}")
        rows = max(self.ranking.post_nms_topn, 1)  # the most proposals; forward sets the count
        top[0].reshape(rows, 5)
        if len(top) > 1:
            top[1].reshape(rows, 1)

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        found, scores = rpn.proposals(bottom[0].data, bottom[1].data, bottom[2].data, self.anchors,
                                      self.stride, self.ranking, self.describe())
        rpn.write_rois(found, scores, list(top))
