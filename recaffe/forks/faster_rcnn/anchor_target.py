from __future__ import annotations

import numpy as np
import torch

from recaffe.blob import Blob as NativeBlob
from recaffe.forks.faster_rcnn import boxes, config, rpn
from recaffe.forks.faster_rcnn.python_layer import BuiltinPythonLayer, put


class AnchorTargetLayer(BuiltinPythonLayer):
    """Stand-in for py-faster-rcnn's ``rpn.anchor_target_layer.AnchorTargetLayer``: the RPN's
    training targets (lib/rpn/anchor_target_layer.py).

    Forward: anchors at every cell of the score map; those inside the image (by
        'allowed_border') get labels: 0 where the best overlap with a ground-truth box is below
        RPN_NEGATIVE_OVERLAP, 1 for each ground truth's best anchors (every anchor equal to a
        column maximum) and where it reaches RPN_POSITIVE_OVERLAP (RPN_CLOBBER_POSITIVES orders
        the two rules as py-faster-rcnn does); foreground is sampled down to
        RPN_FG_FRACTION·RPN_BATCHSIZE and background to the rest of RPN_BATCHSIZE (numpy's
        ``choice`` without replacement, on the layer's own stream); others −1.
        Targets: the deltas to each anchor's best ground truth; inside weights
        RPN_BBOX_INSIDE_WEIGHTS on foreground; outside weights 1/(labelled anchors) (or
        RPN_POSITIVE_WEIGHT split); anchors outside the image: label −1, zeros elsewhere.
        Settings from ``config.current().TRAIN``. No backward.
    param_str: 'feat_stride' (required), 'scales' (default [8, 16, 32]), 'allowed_border' (0).
    Bottoms: rpn_cls_score (1×2A×H×W, for its size), gt_boxes (G×5: x1, y1, x2, y2, class),
        im_info (1×3), data (unused).
    Tops: rpn_labels (1×1×A·H×W), rpn_bbox_targets, rpn_bbox_inside_weights,
        rpn_bbox_outside_weights (1×4A×H×W each).
    """

    required = ("feat_stride",)
    num_bottoms = 4
    num_tops = (4, 4)

    def layer_setup(self, bottom: list[NativeBlob], top: list[NativeBlob]) -> None:
        where = f"layer {self.layer_name!r}"
        self.stride = rpn.feat_stride(self.params, where)
        self.anchors = rpn.anchor_scales(self.params, where)
        border = self.params.get("allowed_border", 0)
        if not isinstance(border, (int, float)):
            raise self.fail(f"param_str 'allowed_border' must be a number, got {border!r}")
        self.allowed_border = float(border)
        count = self.anchors.shape[0]
        height, width = bottom[0].shape[-2:]
        top[0].reshape(1, 1, count * height, width)
        for blob in top[1:]:
            blob.reshape(1, count * 4, height, width)

    def run(self, bottom: list[NativeBlob], top: list[NativeBlob]) -> None:
        if bottom[0].shape[0] != 1:
            raise self.fail(f"only single-image batches are supported, got {bottom[0].shape[0]} images")
        settings = config.current().TRAIN
        height, width = bottom[0].shape[-2:]
        gt = bottom[1].data.reshape(-1, 5).to(torch.float64).cpu()
        if gt.shape[0] == 0:
            raise self.fail("gt_boxes (bottom 1) is empty: every training image needs a ground-truth box")
        im_info = bottom[2].data.reshape(-1).cpu()
        count = self.anchors.shape[0]
        every = boxes.shifted_anchors(self.anchors, height, width, self.stride, torch.device("cpu"))
        every = every.to(torch.float64)
        total = every.shape[0]
        border = self.allowed_border
        inside = torch.nonzero((every[:, 0] >= -border) & (every[:, 1] >= -border)
                               & (every[:, 2] < float(im_info[1]) + border)
                               & (every[:, 3] < float(im_info[0]) + border)).flatten().numpy()
        anchors = every[inside]
        labels = np.full(len(inside), -1.0, dtype=np.float32)
        overlaps = boxes.bbox_overlaps(anchors, gt[:, :4]).numpy()
        argmax = overlaps.argmax(axis=1) if len(inside) else np.zeros(0, dtype=np.int64)
        best = overlaps[np.arange(len(inside)), argmax]
        if len(inside):
            gt_best = overlaps[overlaps.argmax(axis=0), np.arange(overlaps.shape[1])]
            gt_argmax = np.where(overlaps == gt_best)[0]
        else:
            gt_argmax = np.zeros(0, dtype=np.int64)
        if not settings.RPN_CLOBBER_POSITIVES:
            labels[best < settings.RPN_NEGATIVE_OVERLAP] = 0
        labels[gt_argmax] = 1
        labels[best >= settings.RPN_POSITIVE_OVERLAP] = 1
        if settings.RPN_CLOBBER_POSITIVES:
            labels[best < settings.RPN_NEGATIVE_OVERLAP] = 0
        num_fg = int(settings.RPN_FG_FRACTION * settings.RPN_BATCHSIZE)
        fg = np.where(labels == 1)[0]
        if len(fg) > num_fg:
            labels[self.random.choice(fg, size=len(fg) - num_fg, replace=False)] = -1
        num_bg = settings.RPN_BATCHSIZE - int(np.sum(labels == 1))
        bg = np.where(labels == 0)[0]
        if len(bg) > num_bg:
            labels[self.random.choice(bg, size=len(bg) - num_bg, replace=False)] = -1
        targets = boxes.bbox_transform(anchors, gt[torch.from_numpy(argmax), :4]).numpy().astype(np.float32)
        inside_w = np.zeros((len(inside), 4), dtype=np.float32)
        inside_w[labels == 1, :] = np.array(settings.RPN_BBOX_INSIDE_WEIGHTS)
        outside_w = np.zeros((len(inside), 4), dtype=np.float32)
        if settings.RPN_POSITIVE_WEIGHT < 0:
            examples = max(int(np.sum(labels >= 0)), 1)
            positive = negative = 1.0 / examples
        else:
            if not 0 < settings.RPN_POSITIVE_WEIGHT < 1:
                raise self.fail(f"cfg.TRAIN.RPN_POSITIVE_WEIGHT must be < 0 or in (0, 1), "
                                f"got {settings.RPN_POSITIVE_WEIGHT}")
            positive = settings.RPN_POSITIVE_WEIGHT / max(int(np.sum(labels == 1)), 1)
            negative = (1.0 - settings.RPN_POSITIVE_WEIGHT) / max(int(np.sum(labels == 0)), 1)
        outside_w[labels == 1, :] = positive
        outside_w[labels == 0, :] = negative

        def unmap(values: np.ndarray, fill: float) -> np.ndarray:
            full = np.full((total,) + values.shape[1:], fill, dtype=np.float32)
            full[inside] = values
            return full

        put(top[0], unmap(labels, -1).reshape(1, height, width, count).transpose(0, 3, 1, 2)
            .reshape(1, 1, count * height, width))
        for blob, values in zip(top[1:], (targets, inside_w, outside_w)):
            put(blob, unmap(values, 0).reshape(1, height, width, count * 4).transpose(0, 3, 1, 2))
