"""SSD's DetectionEvaluate layer and the mean AP its solver computes (detection_evaluate_layer.cpp,
util/bbox_util.cpp ComputeAP, Solver::TestDetection)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
import torch

from recaffe import forks, test_outputs
from recaffe.blob import Blob
from recaffe.forks.ssd import evaluation
from recaffe.io import prototxt
from recaffe.layer import LayerError
from recaffe.registry import LAYERS

SSD = forks.get_dialect("ssd")


def evaluate(snippet: str, dets: list[list[float]], gt: list[list[float]]) -> list[list[float]]:
    param = SSD.lower_layer(
        prototxt.parse_text(f'name: "ev" type: "DetectionEvaluate" {snippet}', SSD.layer_parameter())
    )
    layer = LAYERS.get("DetectionEvaluate", "ssd")(param)
    bottom = [Blob((1, 1, len(dets), 7)), Blob((1, 1, len(gt), 8))]
    bottom[0].data.copy_(torch.tensor(dets).view(1, 1, -1, 7))
    bottom[1].data.copy_(torch.tensor(gt).view(1, 1, -1, 8))
    top = [Blob()]
    layer.setup(bottom, top)
    layer.run_forward(bottom, top)
    return top[0].data.view(-1, 5).tolist()


GT = [
    [0, 1, 0, 0.1, 0.1, 0.4, 0.4, 0],
    [0, 1, 1, 0.5, 0.5, 0.9, 0.9, 1],
    [0, 2, 0, 0.2, 0.5, 0.4, 0.9, 0],
    [1, 1, 0, 0.0, 0.0, 0.3, 0.3, 0],
]
DETS = [
    [0, 1, 0.6, 0.1, 0.1, 0.4, 0.4],  # tp
    [0, 1, 0.9, 0.12, 0.1, 0.4, 0.42],  # higher score: taken first -> tp; the 0.6 one becomes fp
    [0, 1, 0.5, 0.5, 0.5, 0.9, 0.88],  # the difficult box
    [0, 2, 0.7, 0.6, 0.0, 0.9, 0.2],  # no overlap -> fp
    [1, 2, 0.4, 0.0, 0.0, 0.3, 0.3],  # no ground truth of label 2 in image 1 -> fp
    [2, 1, 0.3, 0.0, 0.0, 0.3, 0.3],  # image without ground truth -> fp
]


def test_rows_follow_the_fork() -> None:
    rows = evaluate("detection_evaluate_param { num_classes: 3 }", DETS, GT)
    np.testing.assert_allclose(
        rows,
        [
            [-1, 1, 3, -1, -1],
            [-1, 2, 1, -1, -1],
            [0, 1, 0.9, 1, 0],
            [0, 1, 0.6, 0, 1],
            [0, 1, 0.5, 1, 0],
            [0, 2, 0.7, 0, 1],
            [1, 2, 0.4, 0, 1],
            [2, 1, 0.3, 0, 1],
        ],
        rtol=1e-6,
    )


def test_difficult_boxes_are_skipped_without_evaluate_difficult_gt() -> None:
    rows = evaluate("detection_evaluate_param { num_classes: 3 evaluate_difficult_gt: false }", DETS, GT)
    assert rows[0] == pytest.approx([-1, 1, 2, -1, -1])
    assert rows[4] == pytest.approx([0, 1, 0.5, 0, 0])


def test_name_size_file_scores_in_pixels_of_each_original_image(tmp_path: Any) -> None:
    sizes = tmp_path / "name_size.txt"
    sizes.write_text("a 10 10\nb 100 100\n")
    gt = [[0, 1, 0, 0, 0, 0.2, 0.2, 0], [1, 1, 0, 0, 0, 0.2, 0.2, 0], [2, 1, 0, 0, 0, 0.2, 0.2, 0]]
    dets = [[i, 1, 0.9, 0.1, 0.1, 0.3, 0.3] for i in range(3)]
    snippet = (
        f'detection_evaluate_param {{ num_classes: 2 overlap_threshold: 0.2 name_size_file: "{sizes}" }}'
    )
    rows = evaluate(snippet, dets, gt)
    # 10x10: pixels (0,0,2,2) and (1,1,3,3) overlap 4/(9+9-4) > 0.2; 100x100: 121/(441+441-121) < 0.2;
    # the third image wraps around to the first line
    assert [r[3] for r in rows[1:]] == [1, 0, 1]
    assert [
        r[3]
        for r in evaluate("detection_evaluate_param { num_classes: 2 overlap_threshold: 0.2 }", dets, gt)[1:]
    ] == [0, 0, 0]
    with pytest.raises(LayerError, match="name_size_file"):
        evaluate('detection_evaluate_param { num_classes: 3 name_size_file: "/nonexistent.txt" }', DETS, GT)


def test_output_box_undoes_fit_large_size_and_pad() -> None:
    from recaffe.forks.ssd.detection_evaluate import output_box

    resize = SSD.pb2.ResizeParameter(
        resize_mode=SSD.pb2.ResizeParameter.FIT_LARGE_SIZE_AND_PAD, height=300, width=300
    )
    box, size = output_box((0.5, 0.25, 1.0, 0.75), (100, 200), resize)
    assert box == pytest.approx((100, 0, 200, 100)) and size == pytest.approx(101 * 101)


def ap_loops(tp: list[tuple[float, int]], num_pos: int, fp: list[tuple[float, int]], version: str) -> float:
    """ComputeAP, loop for loop from the fork's C++ (float32 throughout)."""
    f = np.float32
    pairs = sorted(range(len(tp)), key=lambda i: -tp[i][0])
    tp_sum, fp_sum, t, k = [], [], 0, 0
    for i in pairs:
        t += tp[i][1]
        k += fp[i][1]
        tp_sum.append(t)
        fp_sum.append(k)
    prec = [f(f(a) / f(a + b)) for a, b in zip(tp_sum, fp_sum)]
    rec = [f(f(a) / f(num_pos)) for a in tp_sum]
    ap, num = f(0), len(prec)
    if version == "11point":
        max_precs = [f(0)] * 11
        start = num - 1
        for j in range(10, -1, -1):
            for i in range(start, -1, -1):
                if rec[i] < j / 10.0:
                    start = i
                    if j > 0:
                        max_precs[j - 1] = max_precs[j]
                    break
                if max_precs[j] < prec[i]:
                    max_precs[j] = prec[i]
        for j in range(10, -1, -1):
            ap = f(ap + max_precs[j] / f(11))
    elif version == "MaxIntegral":
        cur_rec, cur_prec = rec[-1], prec[-1]
        for i in range(num - 2, -1, -1):
            cur_prec = max(prec[i], cur_prec)
            if abs(cur_rec - rec[i]) > f(1e-6):
                ap = f(ap + cur_prec * abs(cur_rec - rec[i]))
            cur_rec = rec[i]
        ap = f(ap + cur_rec * cur_prec)
    else:
        prev = f(0)
        for i in range(num):
            if abs(rec[i] - prev) > f(1e-6):
                ap = f(ap + prec[i] * abs(rec[i] - prev))
            prev = rec[i]
    return float(ap)


@pytest.mark.parametrize("version", evaluation.AP_VERSIONS)
@pytest.mark.parametrize("seed", range(3))
def test_compute_ap_equals_the_forks_loops(version: str, seed: int) -> None:
    rand = random.Random(seed)
    flags = [rand.random() < 0.6 for _ in range(40)]
    scores = [round(rand.random(), 2) for _ in flags]  # rounded: ties in score
    tp = [(s, int(t)) for s, t in zip(scores, flags)]
    fp = [(s, 1 - int(t)) for s, t in zip(scores, flags)]
    num_pos = sum(flags) + 5
    assert evaluation.compute_ap(tp, num_pos, fp, version)[2] == ap_loops(tp, num_pos, fp, version)


def test_compute_ap_known_values() -> None:
    tp, fp = [(0.9, 1), (0.8, 0), (0.7, 1)], [(0.9, 0), (0.8, 1), (0.7, 0)]
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    assert evaluation.compute_ap(tp, 2, fp, "Integral")[2] == pytest.approx(0.5 + 2 / 3 * 0.5)
    assert evaluation.compute_ap(tp, 2, fp, "MaxIntegral")[2] == pytest.approx(0.5 + 2 / 3 * 0.5)
    assert evaluation.compute_ap(tp, 2, fp, "11point")[2] == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)
    with pytest.raises(ValueError, match="ap_version"):
        evaluation.compute_ap(tp, 2, fp, "VOC")


def test_mean_ap_over_classes_with_ground_truth() -> None:
    collector = evaluation.DetectionMAP("Integral")
    collector.add(np.array(evaluate("detection_evaluate_param { num_classes: 3 }", DETS, GT)))
    aps = collector.average_precisions()
    assert aps[1] == pytest.approx(
        evaluation.compute_ap(
            [(0.9, 1), (0.6, 0), (0.5, 1), (0.3, 0)], 3, [(0.9, 0), (0.6, 1), (0.5, 0), (0.3, 1)], "Integral"
        )[2]
    )
    assert aps[2] == 0
    assert collector.mean_ap() == pytest.approx((aps[1] + aps[2]) / 2)


def test_nets_of_detection_evaluate_outputs_get_the_detection_evaluator(tmp_path: Any) -> None:
    net_text = """
    name: "ev"
    layer { name: "d" type: "Input" top: "det" top: "gt"
            input_param { shape { dim: 1 dim: 1 dim: 6 dim: 7 } shape { dim: 1 dim: 1 dim: 4 dim: 8 } } }
    layer { name: "ev" type: "DetectionEvaluate" bottom: "det" bottom: "gt" top: "detection_eval"
            detection_evaluate_param { num_classes: 3 } }
    """
    path = tmp_path / "ev.prototxt"
    path.write_text(net_text)
    from recaffe.net import TEST, Net

    net = Net(str(path), TEST)
    net.blob_by_name("det").data.copy_(torch.tensor(DETS).view(1, 1, 6, 7))
    net.blob_by_name("gt").data.copy_(torch.tensor(GT).view(1, 1, 4, 8))
    evaluator = test_outputs.evaluator_for(net)
    assert evaluator is not None
    net.forward()
    evaluator.add(net)
    net.forward()
    evaluator.add(net)  # twice the same batch: the same precision at every recall, twice the positives
    [(name, value)] = evaluator.results()
    assert name == "detection_eval" and 0 < value < 1
