"""recaffe.export.explain: every finding's PyTorch code is valid Python, and the findings follow
the prototxt (a WITHIN_CHANNEL LRN, an AVE pooling with pad, L1 decay, clipping, iter_size)."""

from __future__ import annotations

import pathlib

import pytest

from recaffe.export.explain import explain, render

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "export"
SOLVERS = ["models/bvlc_reference_caffenet/solver.prototxt", "examples/mnist/lenet_solver.prototxt"]

NET = """name: "odd"
layer { name: "data" type: "Data" top: "data" top: "label" transform_param { mean_value: 104 mean_value: 117
  mean_value: 123 crop_size: 8 } data_param { source: "x" batch_size: 2 } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 4
  kernel_size: 3 weight_filler { type: "msra" variance_norm: AVERAGE } bias_term: false } }
layer { name: "lrn" type: "LRN" bottom: "conv" top: "lrn" lrn_param { norm_region: WITHIN_CHANNEL } }
layer { name: "pool" type: "Pooling" bottom: "lrn" top: "pool" pooling_param { pool: AVE kernel_size: 3
  stride: 2 pad: 1 } }
layer { name: "bn" type: "BatchNorm" bottom: "pool" top: "pool" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "pool" bottom: "label" top: "loss"
  loss_param { ignore_label: 255 normalization: BATCH_SIZE } }
"""
SOLVER = """net: "net.prototxt"
type: "Adam" base_lr: 0.001 momentum: 0.9 momentum2: 0.999 lr_policy: "poly" power: 0.9 max_iter: 100
weight_decay: 0.01 regularization_type: "L1" clip_gradients: 10 iter_size: 4
"""


@pytest.mark.parametrize("solver", SOLVERS)
def test_every_snippet_compiles(solver: str) -> None:
    _, findings = explain(FIXTURES / solver)
    assert len(findings) >= 8
    for finding in findings:
        compile(finding.code, f"<{finding.topic} {finding.where}>", "exec")


def test_findings_follow_the_prototxt(tmp_path: pathlib.Path) -> None:
    (tmp_path / "net.prototxt").write_text(NET)
    (tmp_path / "solver.prototxt").write_text(SOLVER)
    header, findings = explain(tmp_path / "solver.prototxt")
    for finding in findings:
        compile(finding.code, finding.where, "exec")
    text = render(header, findings)
    assert "subtract mean_value [104.0, 117.0, 123.0]" in text and "crop 8×8" in text
    assert "msra: N(0, √(2/n)) with n = (fan_in + fan_out) / 2" in text
    assert "[init] bias" not in text  # bias_term: false
    assert "[LRN] lrn (WITHIN_CHANNEL)" in text and "k is ignored" in text
    assert "AVE divides by the window clipped to the padded image" in text
    assert "Pool('AVE', (3, 3), (2, 2), (1, 1), ceil_mode=True)" in text
    assert "[BatchNorm] bn" in text
    assert "positions labelled 255 ignored" in text
    assert "reduction='sum', ignore_index=255) / x.shape[0]" in text
    assert "lr(it) = 0.001 * (1 - it / 100) ** 0.9" in text
    assert "weight_decay 0.01 (L1)" in text and "no torch optimizer has L1 decay" in text
    assert "before the adaptive statistics" in text
    assert "[clip] clip_gradients 10" in text and "[iter_size] iter_size 4" in text
