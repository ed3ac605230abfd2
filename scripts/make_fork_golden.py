"""Golden layer cases from a Caffe fork's own C++, through that fork's pycaffe.

Run with the fork's python (built by ../shared/tools/build-reference-caffe.sh or
scripts/build-fork-caffe.sh), e.g.::

    source ~/.cache/caffe-ref/ssd/env.sh
    GLOG_minloglevel=2 python scripts/make_fork_golden.py ssd tests/forks/golden

It writes ``<out>/<dialect>/<case>/`` in the format of ../shared/golden/layers (see its README):
``net.prototxt`` (Input layers ``in<i>`` with tops ``b<i>`` feeding the layer ``L``, tops ``t<i>``),
``case.json`` and ``data.npz`` (``bottom/``, ``param/``, ``top/``, ``top_diff/``, ``bottom_diff/``,
``param_diff/``, ``param_after/``). Additions for the forks:

* ``case.json`` ``dialect`` (the recaffe dialect that reads the prototxt), ``type`` (the layer
  type under test);
  ``seed``: ``caffe.set_random_seed(seed)`` was called before the net was built (random layers);
  ``inputs``: per bottom ``input`` or ``parameter`` (a Parameter layer ``in<i>`` whose blob holds
  the bottom, so a layer that refuses forced backward still gets a gradient; set
  ``param``s of ``in<i>`` instead of the blob).
* ``kind: "data"`` cases (data layers): files beside the prototxt, read from the case folder;
  ``data.npz`` holds ``forward<k>/t<i>`` for ``forwards`` forwards.
* ``<out>/<dialect>/caffemodel/``: a small net written by the fork's ``Net.save`` (its own field
  numbers): ``net.prototxt``, ``net.caffemodel`` and ``expected.prototxt`` (the caffemodel as the
  fork's own ``caffe_pb2`` reads it, in text format).

Only numpy and the fork's caffe are used (no recaffe). Every input is drawn from a RandomState
seeded by the case name, so a rerun writes the same files.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import zlib
from dataclasses import dataclass, field

import numpy as np
from google.protobuf import text_format

import caffe
from caffe.proto import caffe_pb2

Arrays = list[np.ndarray]


@dataclass
class Case:
    name: str
    type: str
    param: str = ""  # text inside the layer block: "xxx_param { ... }" and other LayerParameter fields
    bottoms: list[tuple[np.ndarray, str]] = field(default_factory=list)
    tops: int = 1
    phase: str = "TRAIN"
    backward: bool = True
    loss_top: bool = False
    params: Arrays | None = None  # L's blobs, set before forward (None: keep what the fork filled)
    seed: int | None = None
    inputs: list[str] | None = None


def rng_for(name: str) -> np.random.RandomState:
    return np.random.RandomState(zlib.crc32(name.encode()) & 0x7FFFFFFF)


def f32(a: np.ndarray | list) -> np.ndarray:
    return np.array(a, dtype=np.float32, order="C")  # (keeps a loss's 0-axis shape, unlike ascontiguousarray)


# ------------------------------------------------------------------------------------------ helpers
def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def random_priors(r: np.random.RandomState, count: int) -> np.ndarray:
    """(1, 2, count*4): corner boxes in [0, 1]-ish, then the variances 0.1 0.1 0.2 0.2."""
    cx, cy = r.uniform(0.15, 0.85, count), r.uniform(0.15, 0.85, count)
    w, h = r.uniform(0.1, 0.45, count), r.uniform(0.1, 0.45, count)
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).reshape(-1)
    variances = np.tile([0.1, 0.1, 0.2, 0.2], count)
    return f32(np.stack([boxes, variances])[None])


def ground_truth(r: np.random.RandomState, priors: np.ndarray, num: int, per_image: int,
                 num_classes: int, difficult: bool = True) -> np.ndarray:
    """(1, 1, G, 8) rows [item, label, instance, xmin, ymin, xmax, ymax, difficult], each a jittered
    prior so that priors match it."""
    boxes = priors[0, 0].reshape(-1, 4)
    rows = []
    for item in range(num):
        for instance in range(per_image):
            box = boxes[r.randint(len(boxes))] + r.uniform(-0.03, 0.03, 4)
            box = np.clip(box, 0.0, 1.0)
            label = 1 + r.randint(num_classes - 1)
            flag = 1.0 if (difficult and item == 0 and instance == per_image - 1) else 0.0
            rows.append([item, label, instance, *box, flag])
    return f32(np.array(rows)[None, None])


def pool_mask(r: np.random.RandomState, shape: tuple[int, int, int, int], kernel: tuple[int, int],
              out_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A bottom and the argmax mask of a max pooling (stride = kernel, ceil) of a random
    (num, channels, out_h, out_w) map: what SegNet's Upsample reads."""
    num, channels, height, width = shape
    kh, kw = kernel
    big = r.randn(num, channels, *out_hw)
    mask = np.zeros(shape)
    data = np.zeros(shape)
    for n in range(num):
        for c in range(channels):
            for ph in range(height):
                for pw in range(width):
                    h0, w0 = ph * kh, pw * kw
                    window = big[n, c, h0:min(h0 + kh, out_hw[0]), w0:min(w0 + kw, out_hw[1])]
                    i, j = np.unravel_index(int(np.argmax(window)), window.shape)
                    mask[n, c, ph, pw] = (h0 + i) * out_hw[1] + (w0 + j)
                    data[n, c, ph, pw] = window[i, j]
    return f32(data), f32(mask)


def randn(r: np.random.RandomState, *shape: int) -> tuple[np.ndarray, str]:
    return f32(r.randn(*shape)), "randn"


# ------------------------------------------------------------------------------------------ SSD
def ssd_cases() -> list[Case]:
    cases: list[Case] = []
    for name, order in [("permute_nhwc", [0, 2, 3, 1]), ("permute_nchw_from_nhwc", [0, 3, 1, 2]),
                        ("permute_partial", [0, 2]), ("permute_identity", []),
                        ("permute_batch_last", [1, 2, 3, 0])]:
        r = rng_for(name)
        text = "permute_param { " + " ".join(f"order: {o}" for o in order) + " }"
        cases.append(Case(name, "Permute", text, [randn(r, 2, 3, 4, 5)]))
    for across in (True, False):
        for shared in (True, False):
            name = f"normalize_{'spatial' if across else 'pixel'}_{'shared' if shared else 'perchannel'}"
            r = rng_for(name)
            scale = f32(r.uniform(5, 20, () if shared else (3,)))
            flags = f"across_spatial: {str(across).lower()} channel_shared: {str(shared).lower()}"
            text = f'norm_param {{ {flags} scale_filler {{ type: "constant" value: 10 }} }}'
            cases.append(Case(name, "Normalize", text, [randn(r, 2, 3, 4, 5)], params=[scale]))
    r = rng_for("normalize_eps")
    cases.append(Case("normalize_eps", "Normalize", "norm_param { across_spatial: false eps: 0.5 }",
                      [(f32(r.randn(2, 3, 3, 4) * 0.3), "randn*0.3")], params=[f32(3.0)]))
    variance4 = "variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2"
    priors = [
        ("prior_min", "min_size: 8"),
        ("prior_min_max_ar", f"min_size: 8 max_size: 16 aspect_ratio: 2 clip: true {variance4}"),
        ("prior_noflip", "min_size: 10 aspect_ratio: 2 aspect_ratio: 3 flip: false variance: 0.2"),
        ("prior_flip_clip", "min_size: 20 max_size: 30 aspect_ratio: 2 aspect_ratio: 3 flip: true "
                            f"clip: true {variance4}"),
        ("prior_step_offset", f"min_size: 6 step: 8 offset: 0.25 {variance4}"),
        ("prior_step_hw_img_hw", "min_size: 6 max_size: 12 step_h: 7 step_w: 9 img_h: 26 img_w: 37 "
                                 "offset: 0"),
        ("prior_img_size", "min_size: 5 aspect_ratio: 2 img_size: 32"),
        ("prior_multi_min", f"min_size: 4 min_size: 9 max_size: 8 max_size: 15 aspect_ratio: 2 {variance4}"),
    ]
    for name, text in priors:
        r = rng_for(name)
        image = (np.zeros((1, 3, 30, 40), np.float32), "zeros")  # PriorBox reads only its shape
        cases.append(Case(name, "PriorBox", f"prior_box_param {{ {text} }}", [randn(r, 1, 2, 3, 4), image],
                          phase="TEST", backward=False))

    def detection(name: str, text: str, num: int = 2, count: int = 12, classes: int = 3,
                  share: bool = True, sharp: float = 2.0) -> Case:
        r = rng_for(name)
        loc_classes = 1 if share else classes
        loc = f32(r.randn(num, count * loc_classes * 4) * 0.5)
        conf = f32(softmax(r.randn(num, count, classes) * sharp).reshape(num, -1))
        return Case(name, "DetectionOutput", f"detection_output_param {{ num_classes: {classes} {text} }}",
                    [(loc, "randn*0.5"), (conf, "softmax"), (random_priors(r, count), "priors")],
                    phase="TEST", backward=False)

    nms = "nms_param { nms_threshold: 0.45 top_k: 10 }"
    cases += [
        detection("detect_corner", f"{nms} keep_top_k: 8 confidence_threshold: 0.1"),
        detection("detect_center_size",
                  f"{nms} code_type: CENTER_SIZE keep_top_k: 6 confidence_threshold: 0.05"),
        detection("detect_corner_size", f"{nms} code_type: CORNER_SIZE confidence_threshold: 0.2"),
        detection("detect_variance_in_target",
                  f"{nms} code_type: CENTER_SIZE variance_encoded_in_target: true confidence_threshold: 0.1"),
        detection("detect_no_share", f"share_location: false {nms} code_type: CENTER_SIZE keep_top_k: 10 "
                                     "confidence_threshold: 0.1", share=False),
        detection("detect_all", "nms_param { nms_threshold: 0.3 } code_type: CENTER_SIZE", num=1),
        detection("detect_eta", "nms_param { nms_threshold: 0.6 top_k: 20 eta: 0.8 } code_type: CENTER_SIZE "
                                "confidence_threshold: 0.05", count=16),
        detection("detect_no_background", f"share_location: false background_label_id: -1 {nms} "
                                          "code_type: CENTER_SIZE keep_top_k: 7 confidence_threshold: 0.3",
                  share=False),  # (shared locations with no background: the fork fails on label -1)
        detection("detect_background_2", f"background_label_id: 2 {nms} confidence_threshold: 0.15",
                  classes=4),
        detection("detect_none", f"{nms} confidence_threshold: 0.99"),
    ]

    def multibox(name: str, text: str, classes: int = 4, share: bool = True, count: int = 20) -> Case:
        r = rng_for(name)
        num = 2
        priors = random_priors(r, count)
        loc_classes = 1 if share else classes
        loc = f32(r.randn(num, count * loc_classes * 4) * 0.3)
        conf = f32(r.randn(num, count * classes))
        gt = ground_truth(r, priors, num, 3, classes)
        return Case(name, "MultiBoxLoss", f"multibox_loss_param {{ num_classes: {classes} {text} }}",
                    [(loc, "randn*0.3"), (conf, "randn"), (priors, "priors"), (gt, "gt")],
                    loss_top=True, inputs=["parameter", "parameter", "input", "input"])

    cases += [
        multibox("multibox_default",
                 "overlap_threshold: 0.5 neg_pos_ratio: 3 neg_overlap: 0.5 code_type: CENTER_SIZE"),
        multibox("multibox_bipartite", "match_type: BIPARTITE code_type: CENTER_SIZE"),
        multibox("multibox_no_mining", "mining_type: NONE code_type: CENTER_SIZE"),
        multibox("multibox_hard_example", "mining_type: HARD_EXAMPLE sample_size: 6 "
                                          "nms_param { nms_threshold: 0.5 } code_type: CENTER_SIZE"),
        multibox("multibox_hard_example_no_nms",
                 "mining_type: HARD_EXAMPLE sample_size: 10 code_type: CENTER_SIZE"),
        multibox("multibox_logistic_l2", "conf_loss_type: LOGISTIC loc_loss_type: L2 code_type: CENTER_SIZE"),
        multibox("multibox_no_share", "share_location: false mining_type: NONE code_type: CENTER_SIZE",
                 share=False),
        multibox("multibox_corner_full",
                 "code_type: CORNER use_difficult_gt: false encode_variance_in_target: true "
                 "overlap_threshold: 0.4 } loss_param { normalization: FULL"),
        multibox("multibox_batch_size_norm", "code_type: CENTER_SIZE loc_weight: 2 neg_pos_ratio: 2 "
                                             "} loss_param { normalization: BATCH_SIZE"),
        multibox("multibox_agnostic", "map_object_to_agnostic: true code_type: CENTER_SIZE", classes=2),
    ]

    def evaluate(name: str, text: str, classes: int = 3) -> Case:
        r = rng_for(name)
        priors = random_priors(r, 10)
        gt = ground_truth(r, priors, 2, 3, classes)
        rows = []
        for row in gt[0, 0]:
            for _ in range(2):
                box = row[3:7] + r.uniform(-0.08, 0.08, 4)
                label = row[1] if r.rand() < 0.8 else 1 + r.randint(classes - 1)
                rows.append([row[0], label, r.uniform(0.05, 1.0), *box])
        rows.append([1, 1, 0.5, 0.6, 0.6, 0.7, 0.7])  # a false positive
        det = f32(np.array(rows)[None, None])
        return Case(name, "DetectionEvaluate",
                    f"detection_evaluate_param {{ num_classes: {classes} {text} }}",
                    [(det, "detections"), (gt, "gt")], phase="TEST", backward=False)

    cases += [
        evaluate("evaluate_default", "background_label_id: 0 overlap_threshold: 0.5"),
        evaluate("evaluate_no_difficult",
                 "background_label_id: 0 overlap_threshold: 0.3 evaluate_difficult_gt: false"),
    ]
    return cases


# ------------------------------------------------------------------------------------------ Faster R-CNN
def rois(r: np.random.RandomState, count: int, num: int, height: float, width: float) -> np.ndarray:
    rows = []
    for i in range(count):
        x1, y1 = r.uniform(-2, width * 0.7), r.uniform(-2, height * 0.7)
        x2, y2 = x1 + r.uniform(0, width * 0.6), y1 + r.uniform(0, height * 0.6)
        rows.append([i % num, x1, y1, x2, y2])
    rows.append([num - 1, width * 0.5, height * 0.5, width * 0.4, height * 0.45])  # malformed: end < start
    return f32(rows)


def faster_rcnn_cases() -> list[Case]:
    cases: list[Case] = []
    for name, shape, pooled, scale, count in [
        ("roi_pool_basic", (2, 3, 12, 16), (3, 3), 0.25, 5),
        ("roi_pool_rect", (1, 2, 9, 11), (2, 4), 1.0, 4),
        ("roi_pool_1_16", (2, 2, 6, 7), (7, 7), 0.0625, 3),
    ]:
        r = rng_for(name)
        data = f32(r.randn(*shape))
        boxes = rois(r, count, shape[0], shape[2] / scale, shape[3] / scale)
        text = f"roi_pooling_param {{ pooled_h: {pooled[0]} pooled_w: {pooled[1]} spatial_scale: {scale} }}"
        cases.append(Case(name, "ROIPooling", text, [(data, "randn"), (boxes, "rois")]))
    # (no loss_weight: the fork's weight is 0, see recaffe/forks/faster_rcnn/smooth_l1_loss.py)
    for name, sigma, weighted, weight in [("smooth_l1_no_loss_weight", None, False, None),
                                          ("smooth_l1_plain", None, False, 1),
                                          ("smooth_l1_sigma3", 3.0, False, 1),
                                          ("smooth_l1_weighted", 1.0, True, 2),
                                          ("smooth_l1_sigma3_weighted", 3.0, True, 1)]:
        r = rng_for(name)
        bottoms = [(f32(r.randn(3, 8, 2, 2) * 0.6), "randn*0.6") for _ in range(2)]
        if weighted:
            inside = f32((r.rand(3, 8, 2, 2) < 0.6) * r.uniform(0.5, 2.0, (3, 8, 2, 2)))
            outside = f32(r.uniform(0.0, 1.5, (3, 8, 2, 2)))
            bottoms += [(inside, "weights"), (outside, "weights")]
        text = "" if sigma is None else f"smooth_l1_loss_param {{ sigma: {sigma} }}"
        text += "" if weight is None else f" loss_weight: {weight}"
        cases.append(Case(name, "SmoothL1Loss", text, bottoms, loss_top=True))
    for scale_train in (True, False):
        for phase in ("TRAIN", "TEST"):
            name = f"dropout_scale_train_{str(scale_train).lower()}_{phase.lower()}"
            r = rng_for(name)
            text = f"dropout_param {{ dropout_ratio: 0.3 scale_train: {str(scale_train).lower()} }}"
            cases.append(Case(name, "Dropout", text, [randn(r, 2, 3, 4, 5)], phase=phase,
                              seed=1701 if phase == "TRAIN" else None))
    return cases


def proposal_cases() -> list[Case]:
    """py-faster-rcnn's RPN proposal layer (lib/rpn/proposal_layer.py, a Python layer) in TEST and TRAIN
    (its config's pre/post-NMS counts differ), with the default and other anchor scales."""
    cases: list[Case] = []
    for name, phase, param, shape, im_info in [
        ("proposal_test", "TEST", "'feat_stride': 16", (6, 8), [96, 128, 1.0]),
        ("proposal_train", "TRAIN", "'feat_stride': 16", (6, 8), [96, 128, 1.0]),
        ("proposal_scales", "TEST", "{'feat_stride': 8, 'scales': [2, 4, 8]}", (9, 7), [70, 54, 1.5]),
    ]:
        r = rng_for(name)
        anchors = 9  # 3 scales x 3 aspect ratios
        scores = f32(r.uniform(0, 1, (1, 2 * anchors, *shape)))
        deltas = f32(r.randn(1, 4 * anchors, *shape) * 0.2)
        text = (f'python_param {{ module: "rpn.proposal_layer" layer: "ProposalLayer" '
                f'param_str: "{param}" }}')
        cases.append(Case(name, "Python", text, [(scores, "uniform"), (deltas, "randn*0.2"),
                                                 (f32([im_info]), "im_info")],
                          tops=2, phase=phase, backward=False))
    return cases


def py_faster_rcnn_path(lib: str) -> str:
    """py-faster-rcnn's rpn and fast_rcnn packages, made Python 3 (2to3; yaml.safe_load; numpy NMS,
    its py_cpu_nms, instead of the compiled cpu/gpu NMS; a small easydict) in a temporary folder."""
    import subprocess
    import tempfile

    root = tempfile.mkdtemp(prefix="py-faster-rcnn-")
    for package, files in [("rpn", ["__init__.py", "proposal_layer.py", "generate_anchors.py"]),
                           ("fast_rcnn", ["__init__.py", "config.py", "bbox_transform.py"]),
                           ("nms", ["__init__.py", "py_cpu_nms.py"])]:
        os.makedirs(os.path.join(root, package))
        for name in files:
            shutil.copy(os.path.join(lib, package, name), os.path.join(root, package, name))
    subprocess.run([sys.executable, "-m", "lib2to3", "-w", "-n", "-j", "1", root], check=True,
                   capture_output=True)
    layer = os.path.join(root, "rpn", "proposal_layer.py")
    with open(layer) as f:
        text = f.read().replace("yaml.load(self.param_str_)", "yaml.safe_load(self.param_str_)")
    with open(layer, "w") as f:
        f.write(text)
    with open(os.path.join(root, "fast_rcnn", "nms_wrapper.py"), "w") as f:
        f.write("from nms.py_cpu_nms import py_cpu_nms\n\n\ndef nms(dets, thresh, force_cpu=False):\n"
                "    return [] if dets.shape[0] == 0 else py_cpu_nms(dets, thresh)\n")
    with open(os.path.join(root, "easydict.py"), "w") as f:
        f.write("class EasyDict(dict):\n"
                "    __getattr__ = dict.__getitem__\n    __setattr__ = dict.__setitem__\n")
    return root


# ------------------------------------------------------------------------------------------ PSPNet
def bn_params(r: np.random.RandomState, channels: int) -> Arrays:
    shape = (1, channels, 1, 1)
    return [f32(r.uniform(0.5, 1.5, shape)), f32(r.randn(*shape) * 0.5), f32(r.randn(*shape) * 0.3),
            f32(r.uniform(0.5, 2.0, shape))]


def pspnet_cases() -> list[Case]:
    cases: list[Case] = []
    for name, text, phase in [("bn_train", "", "TRAIN"), ("bn_test", "", "TEST"),
                              ("bn_frozen", "bn_param { frozen: true }", "TRAIN"),
                              ("bn_momentum_eps", "bn_param { momentum: 0.5 eps: 0.001 }", "TRAIN"),
                              ("bn_frozen_test", "bn_param { frozen: true }", "TEST")]:
        r = rng_for(name)
        cases.append(Case(name, "BN", text, [(f32(r.randn(3, 4, 3, 5) * 2 + 1), "randn*2+1")], phase=phase,
                          params=bn_params(r, 4)))
    for name, text, shape in [
        ("interp_zoom", "zoom_factor: 2", (2, 3, 4, 5)),
        ("interp_zoom3", "zoom_factor: 3", (1, 2, 3, 3)),
        ("interp_shrink", "shrink_factor: 2", (2, 2, 7, 8)),
        ("interp_size_up", "height: 7 width: 9", (1, 3, 3, 4)),
        ("interp_size_down", "height: 3 width: 2", (1, 2, 6, 7)),
        ("interp_shrink_zoom", "shrink_factor: 2 zoom_factor: 3", (1, 2, 5, 6)),
        ("interp_crop", "zoom_factor: 2 pad_beg: -1 pad_end: -1", (1, 2, 5, 6)),
        ("interp_same", "height: 4 width: 5", (1, 2, 4, 5)),
    ]:
        r = rng_for(name)
        cases.append(Case(name, "Interp", f"interp_param {{ {text} }}", [randn(r, *shape)]))
    return cases


# ------------------------------------------------------------------------------------------ SegNet
def segnet_cases() -> list[Case]:
    cases: list[Case] = []
    for name, text, shape, kernel, out_hw, backward in [
        ("upsample_scale2", "scale: 2", (2, 3, 4, 5), (2, 2), (8, 10), True),
        ("upsample_pad_out", "scale: 2 pad_out_h: true pad_out_w: true", (1, 2, 4, 5), (2, 2), (7, 9), True),
        ("upsample_scale_hw", "scale_h: 2 scale_w: 3", (1, 2, 3, 3), (2, 3), (6, 9), True),
        ("upsample_hw", "upsample_h: 7 upsample_w: 9", (1, 2, 4, 5), (2, 2), (7, 9), False),
    ]:
        r = rng_for(name)
        data, mask = pool_mask(r, shape, kernel, out_hw)
        cases.append(Case(name, "Upsample", f"upsample_param {{ {text} }}",
                          [(data, "pooled"), (mask, "mask")], backward=backward))
    for name, text, phase in [("bn_learn_train", "", "TRAIN"), ("bn_learn_test", "", "TEST"),
                              ("bn_inference", "bn_param { bn_mode: INFERENCE }", "TEST")]:
        r = rng_for(name)
        shape = (1, 4, 1, 1)
        params = [f32(r.uniform(0.5, 1.5, shape)), f32(r.randn(*shape) * 0.5)]
        cases.append(Case(name, "BN", text, [(f32(r.randn(3, 4, 3, 5) * 2 + 1), "randn*2+1")], phase=phase,
                          params=params))
    r = rng_for("bn_learn_stats_tops")
    cases.append(Case("bn_learn_stats_tops", "BN", "", [(f32(r.randn(2, 3, 4, 4) + 0.5), "randn+0.5")],
                      tops=3, params=[f32(r.uniform(0.5, 1.5, (1, 3, 1, 1))), f32(r.randn(1, 3, 1, 1))]))
    for name, text, phase, seed in [
        ("dropout_sample_weights_test", "sample_weights_test: true", "TEST", 2024),
        ("dropout_mean_test", "sample_weights_test: false", "TEST", None),
        ("dropout_segnet_train", "", "TRAIN", 2025),
    ]:
        r = rng_for(name)
        cases.append(Case(name, "Dropout", f"dropout_param {{ dropout_ratio: 0.4 {text} }}",
                          [randn(r, 2, 3, 4, 5)], phase=phase, seed=seed))
    return cases


# ------------------------------------------------------------------------------------------ writing
# Forks older than BVLC's Input layer (2016) declare a net's inputs in NetParameter (input, input_shape).
LEGACY_INPUT = {"faster_rcnn", "segnet", "pspnet"}


def net_text(case: Case, force_backward: bool, legacy_input: bool) -> str:
    lines = [f'name: "{case.name}"']
    if force_backward:
        lines.append("force_backward: true")
    inputs = case.inputs or ["input"] * len(case.bottoms)
    for i, ((array, _), how) in enumerate(zip(case.bottoms, inputs)):
        dims = " ".join(f"dim: {d}" for d in array.shape)
        if legacy_input:
            if how != "input":
                raise SystemExit(f"{case.name}: this fork has no Parameter layer")
            lines.append(f'input: "b{i}" input_shape {{ {dims} }}')
        elif how == "parameter":
            lines.append(f'layer {{ name: "in{i}" type: "Parameter" top: "b{i}" '
                         f'parameter_param {{ shape {{ {dims} }} }} }}')
        else:
            lines.append(f'layer {{ name: "in{i}" type: "Input" top: "b{i}" '
                         f'input_param {{ shape {{ {dims} }} }} }}')
    bottoms = " ".join(f'bottom: "b{i}"' for i in range(len(case.bottoms)))
    tops = " ".join(f'top: "t{i}"' for i in range(case.tops))
    layer = f'layer {{ name: "L" {bottoms} {tops} type: "{case.type}" {case.param} }}'
    lines.append(layer.replace("  ", " "))
    return "\n".join(lines) + "\n"


def build_net(path: str, phase: str, seed: int | None) -> caffe.Net:
    """The net in phase; with a seed, built right after Caffe's random stream was seeded with it (through
    a solver's random_seed where the fork's pycaffe has no set_random_seed: the solver seeds, then
    builds its train net and test net, which draw nothing while they are built)."""
    if seed is None:
        return caffe.Net(path, caffe.TRAIN if phase == "TRAIN" else caffe.TEST)
    if hasattr(caffe, "set_random_seed"):
        caffe.set_random_seed(seed)
        return caffe.Net(path, caffe.TRAIN if phase == "TRAIN" else caffe.TEST)
    solver_path = path + ".solver.prototxt"
    with open(solver_path, "w") as f:
        f.write(f'net: "{path}"\nrandom_seed: {seed}\nbase_lr: 0\nlr_policy: "fixed"\nmax_iter: 1\n'
                'test_iter: 1\ntest_interval: 1000000\ntest_initialization: false\nsolver_mode: CPU\n')
    solver = caffe.SGDSolver(solver_path)
    os.unlink(solver_path)
    _SOLVERS.append(solver)  # the nets live as long as their solver
    return solver.net if phase == "TRAIN" else solver.test_nets[0]


_SOLVERS: list = []


def write_case(case: Case, dialect: str, root: str) -> None:
    folder = os.path.join(root, dialect, case.name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    inputs = case.inputs or ["input"] * len(case.bottoms)
    force = case.backward and "parameter" not in inputs
    with open(os.path.join(folder, "net.prototxt"), "w") as f:
        f.write(net_text(case, force, dialect in LEGACY_INPUT))
    net = build_net(os.path.join(folder, "net.prototxt"), case.phase, case.seed)
    out: dict[str, np.ndarray] = {}
    for i, ((array, _), how) in enumerate(zip(case.bottoms, inputs)):
        out[f"bottom/b{i}"] = array
        if how == "parameter":
            net.params[f"in{i}"][0].data[...] = array
        else:
            net.blobs[f"b{i}"].data[...] = array
    blobs = list(net.params["L"]) if "L" in net.params else []  # (an OrderedDict in new pycaffe only)
    if case.params is not None:
        if len(case.params) != len(blobs):
            raise SystemExit(f"{case.name}: L has {len(blobs)} blobs, the case sets {len(case.params)}")
        for j, values in enumerate(case.params):
            blobs[j].data[...] = values.reshape(blobs[j].data.shape)
    for j, blob in enumerate(blobs):
        out[f"param/{j}"] = f32(blob.data.copy())
    net.forward()
    for i in range(case.tops):
        out[f"top/t{i}"] = f32(net.blobs[f"t{i}"].data.copy())
    if case.backward:
        r = rng_for(case.name + "/top_diff")
        if not case.loss_top:
            for i in range(case.tops):
                diff = f32(r.randn(*net.blobs[f"t{i}"].diff.shape))
                net.blobs[f"t{i}"].diff[...] = diff
                out[f"top_diff/t{i}"] = diff
        net.backward()
        for i in range(len(case.bottoms)):
            out[f"bottom_diff/b{i}"] = f32(net.blobs[f"b{i}"].diff.copy())
        for j, blob in enumerate(blobs):
            out[f"param_diff/{j}"] = f32(blob.diff.copy())
            out[f"param_after/{j}"] = f32(blob.data.copy())
    np.savez_compressed(os.path.join(folder, "data.npz"), **out)
    info = {"name": case.name, "dialect": dialect, "type": case.type, "phase": case.phase,
            "backward": case.backward, "tops": case.tops,
            "bottoms": [[list(a.shape), kind] for a, kind in case.bottoms], "loss_top": case.loss_top}
    if case.seed is not None:
        info["seed"] = case.seed
    if case.inputs is not None:
        info["inputs"] = case.inputs
    with open(os.path.join(folder, "case.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in out.items() if k.startswith("top/"))
    print(f"{dialect}/{case.name}: {shapes}")


# ------------------------------------------------------------------------------------------ data layers
def write_dense_image_data(root: str) -> None:
    """SegNet's DenseImageData: PNG images and label images listed in a source file, no shuffling,
    mirroring or cropping (the fork draws those from its prefetch thread's own stream)."""
    from PIL import Image

    for name, text, forwards in [
        ("dense_image_data", "batch_size: 2", 3),
        ("dense_image_data_resize", "batch_size: 2 new_height: 5 new_width: 7 } transform_param { scale: 0.5 "
                                    "mean_value: 10 mean_value: 20 mean_value: 30", 2),
        ("dense_image_data_gray", "batch_size: 3 is_color: false", 2),
    ]:
        folder = os.path.join(root, "segnet", name)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        r = rng_for(name)
        lines = []
        for k in range(3):
            image = r.randint(0, 256, (6, 8, 3)).astype(np.uint8)
            label = r.randint(0, 5, (6, 8)).astype(np.uint8)
            Image.fromarray(image).save(os.path.join(folder, f"img{k}.png"))
            Image.fromarray(label).save(os.path.join(folder, f"lab{k}.png"))
            lines.append(f"img{k}.png lab{k}.png")
        with open(os.path.join(folder, "list.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        layer = (f'layer {{ name: "L" type: "DenseImageData" top: "t0" top: "t1" '
                 f'dense_image_data_param {{ source: "list.txt" {text} }} }}')
        write_data_case(root, "segnet", name, layer, forwards)


def write_data_case(root: str, dialect: str, name: str, layer: str, forwards: int, phase: str = "TEST",
                    seed: int | None = None) -> None:
    """Run the data layer ``layer`` (prototxt text, tops t0 t1) from the case folder and keep its tops."""
    folder = os.path.join(root, dialect, name)
    with open(os.path.join(folder, "net.prototxt"), "w") as f:
        f.write(f'name: "{name}"\n{layer}\n')
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        net = build_net("net.prototxt", phase, seed)
        out = {}
        for k in range(forwards):
            net.forward()
            for i in range(2):
                out[f"forward{k}/t{i}"] = f32(net.blobs[f"t{i}"].data.copy())
        del net
        _SOLVERS.clear()
    finally:
        os.chdir(cwd)
    np.savez_compressed(os.path.join(folder, "data.npz"), **out)
    layer_type = layer.split('type: "')[1].split('"')[0]
    info: dict = {"name": name, "dialect": dialect, "type": layer_type, "kind": "data", "phase": phase,
                  "forwards": forwards}
    if seed is not None:
        info["seed"] = seed
    with open(os.path.join(folder, "case.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    print(f"{dialect}/{name}: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in out.items()))


def write_annotated_data(root: str) -> None:
    """SSD's AnnotatedData from an LMDB of AnnotatedDatum (boxes in groups by label): raw pixels in TEST;
    PNG-encoded images through a batch sampler, resize and mirror in TRAIN, seeded (the prefetch thread
    seeds its stream from Caffe's)."""
    import io

    import lmdb
    from PIL import Image

    source = 'data_param { source: "db" batch_size: 2 backend: LMDB }'
    sampler = ("batch_sampler { sampler { min_scale: 0.5 max_scale: 1 min_aspect_ratio: 0.5 "
               "max_aspect_ratio: 2 } sample_constraint { min_jaccard_overlap: 0.3 } "
               "max_sample: 1 max_trials: 50 }")
    resize = "resize_param { prob: 1 resize_mode: WARP height: 6 width: 7 interp_mode: LINEAR }"
    for name, encoded, layer, phase, seed, forwards in [
        ("annotated_data", False, f"annotated_data_param {{ anno_type: BBOX }} {source} "
         "transform_param { scale: 0.5 mean_value: 10 mean_value: 20 mean_value: 30 }", "TEST", None, 3),
        ("annotated_data_sampler", True, "annotated_data_param { batch_sampler { max_sample: 1 "
         f"max_trials: 1 }} {sampler} }} {source} transform_param {{ mirror: true {resize} }}",
         "TRAIN", 31, 3),
    ]:
        folder = os.path.join(root, "ssd", name)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        r = rng_for(name)
        env = lmdb.open(os.path.join(folder, "db"), map_size=1 << 22, subdir=True, lock=False)
        with env.begin(write=True) as txn:
            for k in range(3):
                image = r.randint(0, 256, (8, 10, 3)).astype(np.uint8)
                anno = caffe_pb2.AnnotatedDatum()
                anno.type = caffe_pb2.AnnotatedDatum.BBOX
                datum = anno.datum
                datum.channels, datum.height, datum.width = 3, 8, 10
                if encoded:
                    buffer = io.BytesIO()
                    Image.fromarray(image[:, :, ::-1]).save(buffer, format="PNG")  # cv::imdecode gives BGR
                    datum.data, datum.encoded = buffer.getvalue(), True
                else:
                    datum.data = image.transpose(2, 0, 1).tobytes()
                for label in (1, 2)[:1 + k % 2]:
                    group = anno.annotation_group.add()
                    group.group_label = label
                    for instance in range(1 + (k + label) % 2):
                        box = group.annotation.add()
                        box.instance_id = instance
                        x0, y0 = r.uniform(0, 0.5, 2)
                        box.bbox.xmin, box.bbox.ymin = x0, y0
                        box.bbox.xmax, box.bbox.ymax = x0 + r.uniform(0.2, 0.5), y0 + r.uniform(0.2, 0.5)
                        box.bbox.difficult = instance == 1
                txn.put(f"{k:08d}".encode(), anno.SerializeToString())
        env.close()
        layer_text = f'layer {{ name: "L" type: "AnnotatedData" top: "t0" top: "t1" {layer} }}'
        write_data_case(root, "ssd", name, layer_text, forwards, phase, seed)
        os.unlink(os.path.join(folder, "db", "lock.mdb"))  # a reader's lock file, not data


# ------------------------------------------------------------------------------------------ caffemodels
NETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fork_golden_nets")


def write_caffemodel(dialect: str, root: str) -> None:
    folder = os.path.join(root, dialect, "caffemodel")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    path = os.path.join(folder, "net.prototxt")
    with open(path, "w") as f, open(os.path.join(NETS, f"{dialect}.prototxt")) as source:
        f.write(source.read())
    net = caffe.Net(path, caffe.TEST)
    r = rng_for(dialect + "/caffemodel")
    for blobs in net.params.values():
        for blob in blobs:
            blob.data[...] = f32(r.uniform(0.5, 1.5, blob.data.shape))
    weights = os.path.join(folder, "net.caffemodel")
    net.save(weights)
    message = caffe_pb2.NetParameter()
    with open(weights, "rb") as f:
        message.ParseFromString(f.read())
    with open(os.path.join(folder, "expected.prototxt"), "w") as f:
        f.write(text_format.MessageToString(message, float_format=".9g"))
    print(f"{dialect}/caffemodel: {os.path.getsize(weights)} bytes, {len(message.layer)} layers")


CASES = {"ssd": ssd_cases, "faster_rcnn": faster_rcnn_cases, "pspnet": pspnet_cases, "segnet": segnet_cases}


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in CASES:
        print(__doc__)
        print(f"usage: {argv[0]} {{{'|'.join(CASES)}}} [OUT (default tests/forks/golden)] [CASE...]",
              file=sys.stderr)
        return 2
    dialect = argv[1]
    root = argv[2] if len(argv) > 2 else "tests/forks/golden"
    only = set(argv[3:])
    caffe.set_mode_cpu()
    cases = CASES[dialect]()
    lib = os.environ.get("PY_FASTER_RCNN_LIB")  # py-faster-rcnn's lib/, for its Python proposal layer
    if dialect == "faster_rcnn" and lib:
        sys.path.insert(0, py_faster_rcnn_path(lib))
        cases += proposal_cases()
    for case in cases:
        if not only or case.name in only:
            write_case(case, dialect, root)
    if dialect == "segnet" and (not only or "dense_image_data" in only):
        write_dense_image_data(root)
    if dialect == "ssd" and (not only or "annotated_data" in only):
        write_annotated_data(root)
    if not only or "caffemodel" in only:
        write_caffemodel(dialect, root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
