"""The training benchmark compares like with like: the PyTorch eager reference is the same net,
from the same weights, with the published solver's settings (no timing here)."""

from __future__ import annotations

import pytest

from benchmarks import models, reference, run, training


@pytest.mark.parametrize("key", ["lenet", "cifar10_quick"])
def test_reference_is_the_same_net_and_solver(key: str, caffe_models) -> None:
    spec = models.TRAIN_NETS[key]
    ours = training.Trainer(models.solver_param(spec, caffe_models))
    assert [layer.type for layer in ours.net.layers][0] == "Input"  # no database needed
    run.check_reference(key, ours)
    theirs = reference.Trainer(key, [p.blob.data for p in ours.net.learnable_params])
    data, label = models.synthetic_batches(spec, 1)[0]
    # the first loss is computed from identical weights and data, before any update
    assert ours.step(data, label) == pytest.approx(theirs.step(data, label), rel=1e-5)
    assert ours.step(data, label) == pytest.approx(theirs.step(data, label), rel=1e-3)
