"""The Solver machinery: nets and states, Caffe's CHECKs, the loop order, iter_size, smoothing,
display and test logging, clipping, regularization, actions, seeds, solve() and weights."""

from __future__ import annotations

import logging
import os
import re

import numpy as np
import pytest
import torch

import recaffe
from recaffe.io import prototxt
from recaffe.proto import caffe_pb2
from recaffe.registry import UnknownTypeError
from recaffe.solver import SolverError
from tests.solvers import least_squares as ls

# Caffe's TestInitTrainTestNets net (test_solver.cpp), with an Input layer for DummyData.
CLASSIFIER = """
name: "TestNetwork"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 5 dim: 2 dim: 3 dim: 4 } shape { dim: 5 } } }
layer { name: "innerprod" type: "InnerProduct" bottom: "data" top: "innerprod"
        inner_product_param { num_output: 10 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "accuracy" type: "Accuracy" bottom: "innerprod" bottom: "label" top: "accuracy"
        exclude { phase: TRAIN } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "innerprod" bottom: "label" top: "loss"
        include { phase: TRAIN } include { phase: TEST stage: "with-softmax" } }
"""


def solver_param(text: str, net: str | None = CLASSIFIER) -> caffe_pb2.SolverParameter:
    param = prototxt.parse_text(text, caffe_pb2.SolverParameter())
    if net is not None:
        param.net_param.CopyFrom(prototxt.parse_text(net, caffe_pb2.NetParameter()))
    return param


def solver(text: str, net: str | None = CLASSIFIER) -> recaffe.Solver:
    return recaffe.load_solver(solver_param(text, net))


def layer_names(net: recaffe.Net) -> set[str]:
    return {name for name, layer in zip(net.layer_names, net.layers) if layer.type != "Split"}


# ====================================================================== nets and states
def test_init_train_test_nets() -> None:
    s = solver("test_interval: 10 test_iter: 10 test_state { stage: 'with-softmax' } "
               "test_iter: 10 test_state {}")
    assert {"loss"} <= layer_names(s.net) and "accuracy" not in layer_names(s.net)
    assert len(s.test_nets) == 2
    assert {"loss", "accuracy"} <= layer_names(s.test_nets[0])
    assert "loss" not in layer_names(s.test_nets[1]) and "accuracy" in layer_names(s.test_nets[1])


STAGED = """
name: "staged"
state { stage: "A" }
layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 } } }
layer { name: "a" type: "ReLU" bottom: "x" top: "a" include { stage: "A" } }
layer { name: "ab" type: "ReLU" bottom: "x" top: "ab" include { stage: "A" stage: "B" } }
layer { name: "test_only" type: "ReLU" bottom: "x" top: "t" include { phase: TEST } }
"""


def test_train_and_test_states_merge_over_the_nets_own_state() -> None:
    """MergeFrom: the solver's state appends its stages to the net's; a set phase overrides."""
    s = solver("train_state { stage: 'B' } test_iter: 1 test_interval: 1", STAGED)
    assert layer_names(s.net) == {"data", "a", "ab"}
    assert layer_names(s.test_nets[0]) == {"data", "a", "test_only"}
    testing = STAGED.replace('state { stage: "A" }', 'state { stage: "A" phase: TEST }')
    assert "test_only" in layer_names(solver("", testing).net)  # the net's own phase wins over TRAIN
    assert "test_only" not in layer_names(solver("train_state { phase: TRAIN }", testing).net)


def net_named(name: str) -> str:
    return CLASSIFIER.replace('name: "TestNetwork"', f'name: "{name}"')


def test_test_nets_are_built_in_caffes_order(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.prototxt").write_text(net_named("FromFile"))
    (tmp_path / "generic.prototxt").write_text(net_named("Generic"))
    param = solver_param("test_interval: 1 test_iter: 1 test_iter: 1 test_iter: 1 test_iter: 1 "
                         "test_net: 'file.prototxt' net: 'generic.prototxt'", None)
    param.test_net_param.add().CopyFrom(prototxt.parse_text(net_named("Inline"), caffe_pb2.NetParameter()))
    s = recaffe.load_solver(param)
    assert s.net.name == "Generic"
    assert [n.name for n in s.test_nets] == ["Inline", "FromFile", "Generic", "Generic"]
    assert all(n.phase == recaffe.TEST for n in s.test_nets)


def test_solver_from_a_prototxt_file(tmp_path, monkeypatch) -> None:
    """Relative net paths are read from the working directory; snapshot_prefix defaults to the
    solver file's path without extension; the deprecated solver_type enum is upgraded."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(CLASSIFIER)
    (tmp_path / "my_solver.prototxt").write_text('net: "net.prototxt" base_lr: 0.1 lr_policy: "fixed" '
                                                 "solver_type: NESTEROV momentum: 0.9")
    s = recaffe.load_solver("my_solver.prototxt")
    assert type(s).__name__ == "NesterovSolver" and s.type == "Nesterov"
    assert s.param.snapshot_prefix == "my_solver"
    assert s.net.name == "TestNetwork"


@pytest.mark.parametrize(
    ("text", "net", "message"),
    [
        ("", None, "exactly one train net using one of the fields net, net_param, train_net, "
                   "train_net_param; got 0"),
        ("train_net: 'x.prototxt'", CLASSIFIER, r"got 2 \(net_param, train_net\)"),
        ("test_net_param { name: 'x' } test_interval: 1", CLASSIFIER,
         "test_iter must be specified for each test network"),
        ("train_net_param { name: 'x' } test_iter: 1", None,
         "test_iter must be specified for each test network"),
        ("test_iter: 1 test_iter: 1 test_state {} test_interval: 1", CLASSIFIER,
         "test_state must be unspecified or specified once per test net"),
        ("test_iter: 2", CLASSIFIER, "test_interval must be > 0 when there are test nets, got 0"),
        ("average_loss: 0", CLASSIFIER, "solver parameter average_loss must be >= 1, got 0"),
        ("iter_size: 0", CLASSIFIER, "solver parameter iter_size must be >= 1, got 0"),
        ("snapshot: 10", CLASSIFIER, "snapshot is specified but snapshot_prefix is not"),
        ("snapshot: 10 snapshot_prefix: '/nonexistent/dir/x'", CLASSIFIER, "Cannot write to snapshot prefix"),
        ("type: 'AdaGrad' momentum: 0.9", CLASSIFIER, "Momentum cannot be used with AdaGrad.*got 0.9"),
        ("type: 'RMSProp' momentum: 0.5", CLASSIFIER, "Momentum cannot be used with RMSProp"),
        ("type: 'RMSProp' rms_decay: 1.0", CLASSIFIER, "rms_decay should lie between 0 and 1.*got 1"),
        ("type: 'RMSProp' rms_decay: -0.1", CLASSIFIER, "rms_decay should lie between 0 and 1"),
        ("type: 'Adam' solver_type: ADAM", CLASSIFIER, "solver_type .* and type .* cannot both be given"),
    ],
)
def test_caffes_checks_are_clear_errors(text: str, net: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        solver(text, net)


def test_solver_base_is_abstract() -> None:
    with pytest.raises(TypeError, match="abstract"):
        recaffe.Solver(solver_param(""))


def test_share_weights_shares_the_train_nets_data() -> None:
    s = solver("base_lr: 0.1 lr_policy: 'fixed'")
    other = recaffe.Net(prototxt.parse_text(CLASSIFIER, caffe_pb2.NetParameter()), recaffe.TEST)
    s.share_weights(other)
    s.step(1)  # zero data: only the bias moves
    bias = s.net.layer_params["innerprod"][1].data
    assert torch.equal(other.layer_params["innerprod"][1].data, bias) and bias.abs().sum() > 0


def test_unknown_solver_type_lists_the_known_ones() -> None:
    with pytest.raises(UnknownTypeError, match="Unknown solver type: 'sgd'.*SGD"):
        solver("type: 'sgd'")


def test_unknown_regularization_type_fails_at_load_when_caffe_would_read_it() -> None:
    with pytest.raises(SolverError, match="Unknown regularization type: 'L3'"):
        solver("base_lr: 0.1 lr_policy: 'fixed' weight_decay: 0.1 regularization_type: 'L3'")
    solver("base_lr: 0.1 lr_policy: 'fixed' regularization_type: 'L3'").step(1)  # no decay: never read


def test_random_seed_is_set_before_the_train_net_is_built() -> None:
    s = solver("random_seed: 5")
    recaffe.set_random_seed(5)
    net_param = prototxt.parse_text(CLASSIFIER, caffe_pb2.NetParameter())
    manual = recaffe.Net(net_param, recaffe.TRAIN)
    assert torch.equal(s.net.layer_params["innerprod"][0].data, manual.layer_params["innerprod"][0].data)


def test_weights_are_copied_into_train_and_test_nets_in_order(tmp_path) -> None:
    base = solver("random_seed: 1")
    paths = []
    for value in (1.0, 2.0, 3.0):
        base.net.layer_params["innerprod"][0].data.fill_(value)
        paths.append(str(tmp_path / f"w{value:g}.caffemodel"))
        base.net.save(paths[-1])
    text = f"test_iter: 1 test_interval: 1 weights: '{paths[0]}, {paths[1]}' weights: '{paths[2]}'"
    s = solver(text)
    for net in (s.net, s.test_nets[0]):
        assert torch.equal(net.layer_params["innerprod"][0].data, torch.full((10, 24), 3.0))
    s = solver(f"weights: '{paths[2]},{paths[0]}'")
    assert torch.equal(s.net.layer_params["innerprod"][0].data, torch.full((10, 24), 1.0))


# ====================================================================== the loop
def test_one_iteration_runs_in_caffes_order() -> None:
    param = ls.solver_param(iter_size=2, extra="test_interval: 2 test_iter: 1")
    param.test_net_param.add().CopyFrom(param.net_param)
    param.ClearField("net_param")
    param.train_net_param.CopyFrom(param.test_net_param[0])
    s, _ = ls.make_solver(param)
    events: list[str] = []
    diffs_at_start: list[float] = []
    s.net.before_forward.append(lambda i: events.append("forward") if i == 0 else None)
    s.net.before_backward.append(lambda i: events.append("backward") if i == 0 else None)
    s.test_nets[0].before_forward.append(lambda i: events.append("test") if i == 0 else None)
    s.add_callback(lambda: (events.append("start"),
                            diffs_at_start.append(sum(p.blob.asum_diff() for p in s.net.learnable_params))),
                   lambda: events.append("gradients"))
    s.set_action_function(lambda: (events.append("action"), "none")[1])
    s.step(3)
    one = ["start", "forward", "backward", "forward", "backward", "gradients", "action"]
    test = ["action", "test"]  # the action function is also polled before every test iteration
    assert events == [*test, *one, *one, *test, *one]
    assert diffs_at_start == [0.0, 0.0, 0.0]  # ClearParamDiffs runs first in every iteration


def test_test_initialization_false_skips_the_test_at_iter_0() -> None:
    s = solver("base_lr: 0.1 lr_policy: 'fixed' test_iter: 1 test_interval: 2 test_initialization: false")
    tested = []
    s.test_nets[0].before_forward.append(lambda i: tested.append(s.iter) if i == 0 else None)
    s.step(5)
    assert tested == [2, 4]


def test_iter_size_accumulates_raw_diffs_and_averages_the_loss() -> None:
    s, _ = ls.make_solver(ls.solver_param(iter_size=2, lr=0.1))
    seen = []
    s.add_callback(lambda: None, lambda: seen.append([p.blob.diff.clone() for p in s.net.learnable_params]))
    probe, _ = ls.make_solver(ls.solver_param(iter_size=2, lr=0.1))  # same seed: same weights
    expected = [torch.zeros_like(p.blob.diff) for p in probe.net.learnable_params]
    pass_losses = []
    for _ in range(2):  # the two half batches, one pass each
        probe.net.clear_param_diffs()
        pass_losses.append(probe.net.forward_backward())
        expected = [e + p.blob.diff for e, p in zip(expected, probe.net.learnable_params)]
    s.step(1)
    for ours, theirs in zip(seen[0], expected):
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    assert pass_losses[0] != pass_losses[1]
    assert s.smoothed_loss == pytest.approx(sum(pass_losses) / 2, rel=1e-6)


def test_smoothed_loss_is_the_mean_of_the_last_average_loss_iterations() -> None:
    s, _ = ls.make_solver(ls.solver_param(lr=0.01, extra="average_loss: 3"))
    losses, smoothed = [], []
    s.net.after_forward.append(
        lambda i: losses.append(float(s.net.blobs["loss"].data)) if i == len(s.net.layers) - 1 else None)
    s.add_callback(lambda: None, lambda: smoothed.append(s.smoothed_loss))
    s.step(7)
    for k in range(7):
        window = losses[max(0, k - 2): k + 1]
        assert smoothed[k] == pytest.approx(sum(window) / len(window), rel=1e-5)
    assert smoothed[-1] != pytest.approx(losses[-1], rel=1e-3)


def records(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "recaffe.solver"]


def test_display_and_test_logging_use_caffes_lines(caplog) -> None:
    caplog.set_level(logging.INFO, logger="recaffe.solver")
    s = solver("base_lr: 0.01 lr_policy: 'fixed' display: 1 test_iter: 2 test_interval: 5 "
               "test_compute_loss: true test_state { stage: 'with-softmax' } max_iter: 1 "
               "snapshot_after_train: false")
    s.solve()
    lines = records(caplog)
    lines = lines[lines.index("Solving TestNetwork"):]
    assert lines[:4] == ["Solving TestNetwork", "Learning Rate Policy: fixed",
                         "Iteration 0, Testing net (#0)", lines[3]]
    test_loss = re.fullmatch(r"Test loss: (\S+)", lines[3]).group(1)
    assert lines[4] == "    Test net output #0: accuracy = 0"  # zero data: all scores tie
    assert lines[5] == f"    Test net output #1: loss = {test_loss} (* 1 = {test_loss} loss)"
    match = re.fullmatch(r"Iteration 0 \((\S+) iter/s, (\S+)s/1 iters\), loss = (\S+)", lines[6])
    assert match, lines[6]
    loss = match.group(3)
    assert lines[7] == f"    Train net output #0: loss = {loss} (* 1 = {loss} loss)"
    assert float(loss) == pytest.approx(float(test_loss), rel=1e-5)  # same weights, same (zero) data
    assert lines[8] == "Iteration 0, lr = 0.01"
    assert re.fullmatch(r"Iteration 1, loss = \S+", lines[9])
    assert lines[10:] == ["Optimization Done."]


def test_outputs_are_formatted_like_iostream() -> None:
    from recaffe import solver as solver_module

    assert solver_module.output_text("loss", 2.3234992, 1.0) == "loss = 2.3235 (* 1 = 2.3235 loss)"
    assert solver_module.output_text("acc", 1e-7, 0.0) == "acc = 1e-07"
    assert solver_module.output_text("l", 123456789.0, 0.5) == "l = 1.23457e+08 (* 0.5 = 6.17284e+07 loss)"


def test_zero_test_iterations_report_nothing(caplog) -> None:
    caplog.set_level(logging.INFO, logger="recaffe.solver")
    s = solver("test_iter: 0 test_interval: 1 test_compute_loss: true")
    assert s.test_all() == [[]]
    assert records(caplog)[-2:] == ["Iteration 0, Testing net (#0)", "Test loss: nan"]


def test_test_shares_train_weights_and_averages_outputs() -> None:
    s = solver("base_lr: 0.5 lr_policy: 'fixed' test_iter: 3 test_interval: 100 "
               "test_state { stage: 'with-softmax' }")
    s.net.blobs["data"].data.normal_(generator=torch.Generator().manual_seed(0))
    s.step(2)
    data = torch.linspace(-1, 1, 120).reshape(5, 2, 3, 4)
    test_net = s.test_nets[0]
    test_net.blobs["data"].data.copy_(data)
    results = s.test(0)
    tested, trained = test_net.layer_params["innerprod"][0], s.net.layer_params["innerprod"][0]
    assert tested.data.data_ptr() == trained.data.data_ptr()  # data shared...
    assert tested.diff.data_ptr() != trained.diff.data_ptr()  # ...diffs not
    s.net.blobs["data"].data.copy_(data)
    train_loss = s.net.forward()
    assert [name for name, _ in results] == ["accuracy", "loss"]
    assert results[1][1] == pytest.approx(train_loss, rel=1e-6)


# ====================================================================== update details
@pytest.mark.parametrize("iter_size", [1, 2])
def test_clipping_scales_the_global_norm_before_normalization(iter_size: int, caplog) -> None:
    caplog.set_level(logging.INFO, logger="recaffe.solver")
    s, _ = ls.make_solver(ls.solver_param(iter_size=iter_size, extra="clip_gradients: 0.1"))
    before = ls.learnable(s)
    raw = []
    s.add_callback(lambda: None, lambda: raw.append(
        sum(p.blob.sumsq_diff() for p in s.net.learnable_params) ** 0.5))
    s.step(1)
    step_norm = sum(float(((a - b) ** 2).sum()) for a, b in zip(before, ls.learnable(s))) ** 0.5
    assert raw[0] > 0.1
    assert step_norm == pytest.approx(0.1 / iter_size, rel=1e-5)  # clipped, then divided by iter_size
    line = next(line for line in records(caplog) if line.startswith("Gradient clipping"))
    assert re.fullmatch(r"Gradient clipping: scaling down gradients \(L2 norm \S+ > 0\.1\) "
                        r"by scale factor \S+", line)


def test_clipping_leaves_small_or_disabled_gradients_alone() -> None:
    runs = []
    for clip in ("clip_gradients: 1e9", "clip_gradients: -1", ""):
        s, _ = ls.make_solver(ls.solver_param(lr=0.01, extra=clip))
        s.step(2)
        runs.append(ls.learnable(s))
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1])) and all(
        torch.equal(a, b) for a, b in zip(runs[0], runs[2]))


MULTS = """
name: "mults"
layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
        param { lr_mult: 2 decay_mult: 3 } param { lr_mult: 0.5 decay_mult: 0 }
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 1 }
                              bias_filler { type: "gaussian" std: 1 } } }
layer { name: "frozen" type: "InnerProduct" bottom: "y" top: "z" param { lr_mult: 0 } param { lr_mult: 0 }
        inner_product_param { num_output: 1 weight_filler { type: "gaussian" std: 1 }
                              bias_filler { type: "gaussian" std: 1 } } }
"""


@pytest.mark.parametrize("kind", ["L2", "L1"])
def test_regularization_with_lr_and_decay_mults(kind: str) -> None:
    """Zero gradients: the step is lr·lr_mult·wd·decay_mult·(w or sign w) (SGD, no momentum)."""
    s = solver(f"base_lr: 0.5 lr_policy: 'fixed' weight_decay: 0.25 regularization_type: '{kind}' "
               "random_seed: 3", MULTS)
    w, b = (blob.data.clone() for blob in s.net.layer_params["ip"])
    w[0, 0] = 0.0
    s.net.layer_params["ip"][0].data.copy_(w)
    frozen = [blob.data.clone() for blob in s.net.layer_params["frozen"]]
    s.net.clear_param_diffs()
    s.apply_update()
    decay_term = w if kind == "L2" else torch.sign(w)
    torch.testing.assert_close(s.net.layer_params["ip"][0].data, w - 0.5 * 2 * 0.25 * 3 * decay_term)
    assert torch.equal(s.net.layer_params["ip"][1].data, b)  # decay_mult 0
    assert all(torch.equal(a.data, f) for a, f in zip(s.net.layer_params["frozen"], frozen))  # lr_mult 0
    assert s.iter == 1


def test_pycaffe_apply_update() -> None:
    """pycaffe's test_solver: weights 0 and diffs 1 give w = -base_lr after apply_update."""
    s = solver("base_lr: 0.01 momentum: 0.9 weight_decay: 0.0005 lr_policy: 'inv' gamma: 0.0001 "
               "power: 0.75 display: 100 max_iter: 100 snapshot_after_train: false")
    for blobs in s.net.layer_params.values():
        for blob in blobs:
            blob.data.zero_()
            blob.diff.fill_(1.0)
    s.apply_update()
    for blobs in s.net.layer_params.values():
        for blob in blobs:
            assert torch.equal(blob.data, torch.full(blob.shape, -np.float32(0.01)))


def test_shared_params_are_one_learnable_param() -> None:
    s, _ = ls.make_solver(ls.solver_param(share=True, momentum=0.5, lr=0.01))
    assert len(s.net.params) == 4 and len(s.net.learnable_params) == 2 and len(s.history) == 2
    s.step(3)
    first, second = s.net.layer_params["innerprod"], s.net.layer_params["innerprod2"]
    assert all(a.data.data_ptr() == b.data.data_ptr() for a, b in zip(first, second))
    plain, _ = ls.make_solver(ls.solver_param(momentum=0.5, lr=0.01))
    plain.step(3)
    for ours, theirs in zip(ls.learnable(s), ls.learnable(plain)):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


# ====================================================================== runs
def test_two_runs_from_one_seed_are_bit_identical() -> None:
    runs = []
    for _ in range(2):
        s, _ = ls.make_solver(ls.solver_param("Adam", 0.01, 0.001, 0.9, iter_size=2))
        s.step(5)
        runs.append(ls.learnable(s) + ls.history(s))
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def test_iter_size_2_equals_the_doubled_batch_exactly() -> None:
    """With dyadic data, weights and rates every float operation is exact, so accumulating two
    half batches (then ×1/2) gives the full batch's weights bit for bit."""
    x = torch.tensor([[(i * 7 + j * 3) % 5 - 2 for j in range(ls.DIM)] for i in range(ls.NUM_ROWS)],
                     dtype=torch.float32) / 2
    y = torch.arange(ls.NUM_ROWS, dtype=torch.float32).reshape(-1, 1) % 3 - 1
    runs = []
    for iter_size in (1, 2):
        s, feeder = ls.make_solver(ls.solver_param(lr=0.0625, momentum=0.5, iter_size=iter_size))
        feeder.x, feeder.y = x.reshape(ls.NUM_ROWS, *ls.ITEM_SHAPE), y
        s.net.learnable_params[0].blob.data.copy_(torch.arange(ls.DIM).reshape(1, -1) % 4 / 4 - 0.5)
        s.net.learnable_params[1].blob.data.fill_(0.25)
        s.step(3)
        runs.append(ls.learnable(s) + ls.history(s))
    assert all(torch.equal(a, b) for a, b in zip(*runs))
    assert not torch.equal(runs[0][0], torch.arange(ls.DIM).reshape(1, -1) % 4 / 4 - 0.5)


# ====================================================================== actions and solve()
def test_stop_request_ends_solve_early_and_snapshots(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="recaffe.solver")
    s, _ = ls.make_solver(ls.solver_param(extra=f"max_iter: 10 snapshot_prefix: '{tmp_path}/run'"))
    s.param.snapshot_after_train = True
    requests = iter(["none", "none", "stop"])
    s.set_action_function(lambda: next(requests, "none"))
    s.solve()
    assert s.iter == 3
    assert sorted(os.listdir(tmp_path)) == ["run_iter_3.caffemodel", "run_iter_3.solverstate"]
    assert records(caplog)[-1] == "Optimization stopped early."


def test_snapshot_request_snapshots_and_continues(tmp_path) -> None:
    s, _ = ls.make_solver(ls.solver_param(extra=f"snapshot_prefix: '{tmp_path}/run'"))
    requests = iter(["none", "snapshot", "none"])
    s.set_action_function(lambda: next(requests, "none"))
    s.step(3)
    assert s.iter == 3 and sorted(os.listdir(tmp_path)) == ["run_iter_2.caffemodel", "run_iter_2.solverstate"]


def test_stop_during_testing_interrupts_the_test_and_the_step(caplog) -> None:
    caplog.set_level(logging.INFO, logger="recaffe.solver")
    s = solver("base_lr: 0.1 lr_policy: 'fixed' test_iter: 5 test_interval: 1")
    requests = iter(["none", "stop"])  # like Caffe's signal handler: each signal is reported once
    s.set_action_function(lambda: next(requests, "none"))
    s.step(3)
    assert s.iter == 0 and "Test interrupted." in records(caplog)


def test_action_function_must_return_a_known_action() -> None:
    s = solver("base_lr: 0.1 lr_policy: 'fixed'")
    s.set_action_function(lambda: "halt")
    with pytest.raises(SolverError, match="'halt'"):
        s.step(1)


def test_solve_runs_to_max_iter_snapshots_and_resumes(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="recaffe.solver")
    text = f"max_iter: 4 snapshot: 2 snapshot_prefix: '{tmp_path}/run'"
    s, _ = ls.make_solver(ls.solver_param(lr=0.01, momentum=0.9, extra=text))
    s.param.snapshot_after_train = True
    s.solve()
    assert s.iter == 4
    assert sorted(os.listdir(tmp_path)) == [f"run_iter_{i}.{ext}" for i in (2, 4)
                                            for ext in ("caffemodel", "solverstate")]
    lines = records(caplog)
    assert f"Snapshotting to binary proto file {tmp_path}/run_iter_4.caffemodel" in lines
    assert f"Snapshotting solver state to binary proto file {tmp_path}/run_iter_4.solverstate" in lines
    resumed, _ = ls.make_solver(ls.solver_param(lr=0.01, momentum=0.9, extra=text), position=2)
    resumed.param.snapshot_after_train = True
    resumed.solve(tmp_path / "run_iter_2.solverstate")
    assert resumed.iter == 4
    assert all(torch.equal(a, b) for a, b in zip(ls.learnable(resumed), ls.learnable(s)))


def test_the_first_display_after_a_resume_counts_only_the_iterations_since(tmp_path, caplog) -> None:
    """iter/s × seconds = the iterations displayed over (the display interval), not the
    iteration number restored from the snapshot (which gave a bogus first iter/s)."""
    text = f"max_iter: 40 snapshot: 30 display: 5 snapshot_prefix: '{tmp_path}/run'"
    s, _ = ls.make_solver(ls.solver_param(lr=0.01, extra=text))
    s.step(30)
    caplog.set_level(logging.INFO, logger="recaffe.solver")
    caplog.clear()  # only the resumed run's lines
    resumed, _ = ls.make_solver(ls.solver_param(lr=0.01, extra=text), position=30)
    resumed.solve(tmp_path / "run_iter_30.solverstate")
    shown = [re.match(r"Iteration (\d+) \(([\d.e+-]+) iter/s, ([\d.e+-]+)s/5 iters\)", line)
             for line in records(caplog)]
    displays = [(int(m[1]), float(m[2]), float(m[3])) for m in shown if m]
    assert [it for it, _, _ in displays] == [30, 35]
    (_, first_rate, first_lapse), (_, rate, lapse) = displays
    assert first_rate * first_lapse < 1 + 1e-3  # iteration 30 itself: nothing run since the restore
    assert rate * lapse == pytest.approx(5, rel=1e-3)


@pytest.mark.parametrize(("text", "message"), [
    ("base_lr: nan", "solver parameter base_lr must be a finite number, got nan"),
    ("base_lr: 0.1 momentum: inf", "solver parameter momentum must be a finite number, got inf"),
    ("weight_decay: -inf", "solver parameter weight_decay must be a finite number, got -inf"),
    ("max_iter: -1", "solver parameter max_iter must be >= 0, got -1"),
    ("test_iter: -1 test_interval: 5", "solver parameter test_iter (test net #0) must be >= 0, got -1"),
    ("display: -2", "solver parameter display must be >= 0, got -2"),
    ("snapshot: -5", "solver parameter snapshot must be >= 0, got -5"),
    ("lr_policy: 'step' gamma: 0.1", "lr_policy 'step' needs stepsize > 0, got 0"),
])
def test_solver_values_that_make_no_sense_fail_at_load(text: str, message: str) -> None:
    with pytest.raises(SolverError) as info:
        solver(text)
    assert str(info.value) == message
