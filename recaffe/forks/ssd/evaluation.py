"""SSD's detection scoring: average precision (the fork's ComputeAP) and the mean AP its solver
reports from the rows of DetectionEvaluate layers (Solver::TestDetection).

A solver with the fork's ``eval_type: "detection"`` (read in the SSD dialect, with ``ap_version``
and ``show_per_class_result``), and without eval_type any net whose outputs all come from
DetectionEvaluate layers (also under ``caffe test``), is scored this way (``recaffe.test_outputs``):
per output blob, the rows of every batch are collected, AP is computed per class and their mean
is reported as the blob's value (``detection_eval = 0.71``), as the fork's Solver::TestDetection.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from recaffe import forks, test_outputs
from recaffe.proto import caffe_pb2

if TYPE_CHECKING:
    from recaffe.net import Net

log = logging.getLogger(__name__)

AP_VERSIONS = ("11point", "MaxIntegral", "Integral")
DEFAULT_AP_VERSION = "Integral"  # the fork's SolverParameter.ap_version default
EPS = np.float32(1e-6)


def compute_ap(
    true_pos: list[tuple[float, int]], num_pos: int, false_pos: list[tuple[float, int]], ap_version: str
) -> tuple[list[float], list[float], float]:
    """ComputeAP: (precision, recall, AP) of one class from (score, 0/1) pairs, in float32.

    The pairs are ordered by descending score (stable). 11point: the mean over recall
    thresholds 0, 0.1, ..., 1 of the best precision at recall >= threshold (VOC2007);
    MaxIntegral: the area under the precision envelope (VOC2012, ILSVRC); Integral: the plain
    sum of precision times recall step.
    """
    if ap_version not in AP_VERSIONS:
        raise ValueError(f"unknown ap_version {ap_version!r} (one of {', '.join(AP_VERSIONS)})")
    if len(true_pos) != len(false_pos):
        raise ValueError("true_pos and false_pos must have the same length")
    if not true_pos or num_pos == 0:
        return [], [], 0.0
    order = sorted(range(len(true_pos)), key=lambda i: -true_pos[i][0])
    tp = np.cumsum([true_pos[i][1] for i in order])
    fp = np.cumsum([false_pos[i][1] for i in order])
    if tp[-1] > num_pos:
        raise ValueError(f"{tp[-1]} true positives for {num_pos} ground-truth boxes")
    prec = (tp.astype(np.float32) / (tp + fp).astype(np.float32)).astype(np.float32)
    rec = (tp.astype(np.float32) / np.float32(num_pos)).astype(np.float32)
    ap = np.float32(0)
    num = len(prec)
    if ap_version == "11point":
        max_precs = [np.float32(0)] * 11
        start = num - 1
        for j in range(10, -1, -1):
            for i in range(start, -1, -1):
                if float(rec[i]) < j / 10.0:
                    start = i
                    if j > 0:
                        max_precs[j - 1] = max_precs[j]
                    break
                max_precs[j] = max(max_precs[j], prec[i])
        for j in range(10, -1, -1):
            ap = np.float32(ap + max_precs[j] / np.float32(11))
    elif ap_version == "MaxIntegral":
        cur_rec, cur_prec = rec[-1], prec[-1]
        for i in range(num - 2, -1, -1):
            cur_prec = max(prec[i], cur_prec)
            if abs(cur_rec - rec[i]) > EPS:
                ap = np.float32(ap + cur_prec * abs(cur_rec - rec[i]))
            cur_rec = rec[i]
        ap = np.float32(ap + cur_rec * cur_prec)
    else:
        prev = np.float32(0)
        for i in range(num):
            if abs(rec[i] - prev) > EPS:
                ap = np.float32(ap + prec[i] * abs(rec[i] - prev))
            prev = rec[i]
    return prec.tolist(), rec.tolist(), float(ap)


class DetectionMAP:
    """Collects DetectionEvaluate rows [image, label, score, tp, fp] (a row with image -1 gives a
    class's number of ground-truth boxes) and computes the mean AP over the classes."""

    def __init__(self, ap_version: str = DEFAULT_AP_VERSION) -> None:
        if ap_version not in AP_VERSIONS:
            raise ValueError(f"unknown ap_version {ap_version!r} (one of {', '.join(AP_VERSIONS)})")
        self.ap_version = ap_version
        self.num_pos: dict[int, int] = {}
        self.true_pos: dict[int, list[tuple[float, int]]] = {}
        self.false_pos: dict[int, list[tuple[float, int]]] = {}

    def add(self, rows: np.ndarray) -> None:
        for item, label, score, tp, fp in rows.reshape(-1, 5).tolist():
            label = int(label)
            if int(item) == -1:
                self.num_pos[label] = self.num_pos.get(label, 0) + int(score)
            elif int(tp) or int(fp):  # neither: matched a difficult box not evaluated
                self.true_pos.setdefault(label, []).append((float(np.float32(score)), int(tp)))
                self.false_pos.setdefault(label, []).append((float(np.float32(score)), int(fp)))

    def average_precisions(self) -> dict[int, float]:
        aps = {}
        for label in sorted(self.num_pos):
            if label not in self.true_pos:
                log.warning("Missing true_pos for label: %d", label)
                continue
            aps[label] = compute_ap(
                self.true_pos[label], self.num_pos[label], self.false_pos[label], self.ap_version
            )[2]
        return aps

    def mean_ap(self) -> float:
        """The sum of the classes' APs over the number of classes with ground truth (as the fork)."""
        aps = self.average_precisions()
        total = np.float32(0)
        for value in aps.values():
            total = np.float32(total + np.float32(value))
        return float(total / np.float32(len(self.num_pos))) if self.num_pos else 0.0


class DetectionEvaluator:
    """The solver's detection scoring of a net whose outputs are all DetectionEvaluate tops."""

    def __init__(
        self, names: list[str], ap_version: str = DEFAULT_AP_VERSION, per_class: bool = False
    ) -> None:
        self.names = names
        self.maps = [DetectionMAP(ap_version) for _ in names]
        self.per_class = per_class

    def add(self, net: Net) -> None:
        for name, collector in zip(self.names, self.maps):
            rows = net.blob_by_name(name).data
            if rows.shape[-1] != 5:
                raise ValueError(
                    f"eval_type detection: output {name!r} of shape {tuple(rows.shape)} is not "
                    f"DetectionEvaluate's rows of 5"
                )
            collector.add(rows.detach().cpu().numpy())

    def results(self) -> list[tuple[str, float]]:
        out = []
        for name, collector in zip(self.names, self.maps):
            if self.per_class:
                for label, ap in collector.average_precisions().items():
                    log.info("class%d: %g", label, ap)
            out.append((name, collector.mean_ap()))
        return out


def detection_evaluator(
    net: Net, solver_param: caffe_pb2.SolverParameter | None
) -> DetectionEvaluator | None:
    """The SSD solver's scoring: with ``eval_type: "detection"`` (its ap_version and
    show_per_class_result), or, without eval_type, when every output blob of ``net`` is a
    DetectionEvaluate top (the fork's default ap_version, Integral)."""
    fields = forks.get_dialect("ssd").fork_solver_param(solver_param) if solver_param is not None else None
    names = [net.blob_names[i] for i in net.output_blob_indices]
    if fields is not None and fields.HasField("eval_type"):
        if fields.eval_type not in ("classification", "detection"):
            raise ValueError(f"unknown eval_type {fields.eval_type!r} (classification or detection)")
        if fields.eval_type == "classification":
            return None
        return DetectionEvaluator(names, fields.ap_version, fields.show_per_class_result)
    producers = {}
    for layer, top_ids in zip(net.layers, net.top_id_vecs):
        for blob_id in top_ids:
            producers[blob_id] = layer.type
    outputs = net.output_blob_indices
    if not outputs or any(producers.get(i) != "DetectionEvaluate" for i in outputs):
        return None
    if fields is not None and fields.HasField("ap_version"):
        return DetectionEvaluator(names, fields.ap_version, fields.show_per_class_result)
    return DetectionEvaluator(names, DEFAULT_AP_VERSION, fields is not None and fields.show_per_class_result)


test_outputs.EVALUATORS.append(detection_evaluator)
