"""Building a net with its weights (``Net(..., weights_file=)``) defers the fillers' draws
(recaffe/fillers.py ``deferring``, rng.py ``CaffeRNG.defer``): the net's weights and Caffe's random
stream afterwards are exactly those of building the net (fillers run) and then copying the weights."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from google.protobuf import text_format

import recaffe
from recaffe import fillers, net_builder, rng
from recaffe.layer import LayerError
from recaffe.proto import caffe_pb2

# every drawing filler, a sparse gaussian, a shared weight and a TRAIN-time Dropout after them
NET = """
name: "fills"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3
    weight_filler { type: "gaussian" std: 0.01 } bias_filler { type: "uniform" min: -1 max: 1 } } }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" }
    bias_filler { type: "gaussian" std: 0.5 sparse: 2 } } }
layer { name: "conv3" type: "Convolution" bottom: "conv2" top: "conv3"
  param { name: "shared" } convolution_param { num_output: 4 kernel_size: 1 bias_term: false
    weight_filler { type: "msra" } } }
layer { name: "conv4" type: "Convolution" bottom: "conv3" top: "conv4"
  param { name: "shared" } convolution_param { num_output: 4 kernel_size: 1 bias_term: false
    weight_filler { type: "positive_unitball" } } }
layer { name: "ip" type: "InnerProduct" bottom: "conv4" top: "ip"
  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.1 }
    bias_filler { type: "constant" value: 0.5 } } }
layer { name: "drop" type: "Dropout" bottom: "ip" top: "ip" dropout_param { dropout_ratio: 0.5 } }
"""


def param(phase: caffe_pb2.Phase.ValueType = caffe_pb2.TRAIN) -> caffe_pb2.NetParameter:
    net = text_format.Parse(NET, caffe_pb2.NetParameter())
    net.state.phase = phase
    return net


def write_weights(path: pathlib.Path, missing: str) -> pathlib.Path:
    """Weights for every layer but ``missing`` (which keeps its fillers), none the fillers' values."""
    rng.set_random_seed(99)
    net = recaffe.Net(param())
    for blob in net.params:
        blob.data.copy_(torch.arange(blob.count(), dtype=torch.float32).view(blob.shape) / 7 - 3)
    proto = net.to_proto()
    kept = [layer for layer in proto.layer if layer.name != missing]
    del proto.layer[:]
    proto.layer.extend(kept)
    path.write_bytes(proto.SerializeToString())
    return path


@pytest.fixture
def weights(tmp_path: pathlib.Path) -> pathlib.Path:
    return write_weights(tmp_path / "w.caffemodel", missing="conv2")


def eager(source: caffe_pb2.NetParameter, weights: pathlib.Path, seed: int) -> recaffe.Net:
    """The way Caffe does it: fillers drawn at setup, weights copied over them."""
    rng.set_random_seed(seed)
    net = recaffe.Net(source)
    net.copy_trained_layers_from(weights)
    return net


def deferred(source: caffe_pb2.NetParameter, weights: pathlib.Path, seed: int) -> recaffe.Net:
    rng.set_random_seed(seed)
    return recaffe.Net(source, weights_file=weights)


def assert_same_stream(a: rng.RngState, b: rng.RngState) -> None:
    """The same seed, mt19937 key and position, and words drawn ahead: the same future draws."""
    assert a[0] == b[0] and a[2] == b[2]
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[3], b[3])


def assert_same_params(a: recaffe.Net, b: recaffe.Net) -> None:
    for x, y in zip(a.params, b.params, strict=True):
        assert torch.equal(x.data, y.data)


def test_weights_and_the_stream_after_equal_caffes(weights: pathlib.Path) -> None:
    a = eager(param(), weights, seed=7)
    state_a = rng.get_state()
    b = deferred(param(), weights, seed=7)
    state_b = rng.get_state()
    assert_same_params(a, b)
    assert_same_stream(state_a, state_b)
    # conv2 was not in the weights: its fillers' values, drawn after conv1's skipped gaussian
    assert float(b.layer_params["conv2"][0].data.abs().sum()) > 0


def test_weights_reaching_a_shared_param_through_the_sharer(tmp_path: pathlib.Path) -> None:
    """conv3 owns the shared weight and is not in the file; conv4 shares it and is: the weight
    holds conv4's copied values, as in Caffe (the owner's filler ran before the copy)."""
    path = write_weights(tmp_path / "w.caffemodel", missing="conv3")
    a = eager(param(), path, seed=11)
    after_a = rng.get_state()
    b = deferred(param(), path, seed=11)
    after_b = rng.get_state()
    assert_same_params(a, b)
    assert torch.equal(b.layer_params["conv3"][0].data, b.layer_params["conv4"][0].data)
    assert_same_stream(after_a, after_b)


def test_a_dropout_after_loading_draws_the_same_mask(weights: pathlib.Path) -> None:
    masks = []
    for build in (eager, deferred):
        net = build(param(), weights, seed=3)
        net.blob_by_name("data").data.fill_(1.0)
        net.forward()
        masks.append(net.blob_by_name("ip").data.clone())
    assert torch.equal(masks[0], masks[1])
    assert bool((masks[0] == 0).any())  # Dropout did drop


def test_draws_skipped_until_the_stream_is_read(weights: pathlib.Path) -> None:
    """Every layer covered by the weights: nothing is drawn while building, the position catches
    up when the stream is next read."""
    full = param()
    full.layer[2].convolution_param.weight_filler.type = "constant"  # conv2 (no weights) draws nothing
    full.layer[2].convolution_param.bias_filler.type = "constant"
    full.layer[2].convolution_param.bias_filler.ClearField("sparse")
    rng.set_random_seed(5)
    recaffe.Net(full, weights_file=weights)
    assert rng.get_rng()._deferred  # pending: conv1, conv3, conv4, ip
    rng.get_rng().settle()
    after_deferred = rng.get_rng().uniform(4, 0, 1)
    eager(full, weights, seed=5)
    assert np.array_equal(after_deferred, rng.get_rng().uniform(4, 0, 1))


def test_seeding_drops_what_was_deferred(weights: pathlib.Path) -> None:
    deferred(param(), weights, seed=1)
    rng.set_random_seed(4)
    first = rng.get_rng().uniform(3, 0, 1)
    rng.set_random_seed(4)
    assert np.array_equal(first, rng.get_rng().uniform(3, 0, 1))


def test_bad_fillers_fail_while_building(weights: pathlib.Path) -> None:
    for field, value, message in (("std", 0.0, "gaussian needs sigma > 0"),
                                  ("sparse", -3, "sparse must be >= -1")):
        bad = param()
        setattr(bad.layer[1].convolution_param.weight_filler, field, value)
        with pytest.raises(LayerError, match=message):
            recaffe.Net(bad, weights_file=weights)
    bad = param()
    bad.layer[1].convolution_param.bias_filler.min = 2.0
    with pytest.raises(LayerError, match="uniform range needs min <= max"):
        recaffe.Net(bad, weights_file=weights)


def test_without_deferring_fill_param_fills() -> None:
    blob = recaffe.Blob((3, 4))
    rng.set_random_seed(2)
    fillers.fill_param(blob, caffe_pb2.FillerParameter(type="gaussian", std=1.0), rng.get_rng())
    assert not rng.get_rng()._deferred and float(blob.data.abs().sum()) > 0


def test_building_and_loading_run_on_one_thread_and_restore_the_count(
        weights: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(net_builder.threading, "active_count", lambda: 1)  # (earlier tests' threads)
    seen = []
    original = recaffe.Net._copy_layers

    def spy(net, layers, source="<weights>"):  # type: ignore[no-untyped-def]
        seen.append(torch.get_num_threads())
        return original(net, layers, source)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        recaffe.Net._copy_layers = spy  # type: ignore[method-assign]
        net = recaffe.Net(param(), weights_file=weights)
        net.copy_trained_layers_from(weights)
        assert seen == [1, 1] and torch.get_num_threads() == 2
    finally:
        recaffe.Net._copy_layers = original  # type: ignore[method-assign]
        torch.set_num_threads(before)


def test_a_long_queue_of_deferred_draws_runs_by_itself(weights: pathlib.Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rng.CaffeRNG, "_MAX_DEFERRED", 3)
    deferred(param(), weights, seed=8)  # 4 layers' draws skipped: the fourth runs the queue
    assert len(rng.get_rng()._deferred) < 3
    state = rng.get_state()
    eager(param(), weights, seed=8)
    assert_same_stream(state, rng.get_state())


def test_one_thread_stays_out_of_the_way_of_other_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(net_builder.threading, "active_count", lambda: 2)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with net_builder.one_thread():
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


_SERVER = """
import sys
from google.protobuf import text_format
import recaffe
from recaffe import rng
from recaffe.proto import caffe_pb2
source = text_format.Parse(sys.stdin.read(), caffe_pb2.NetParameter())
rng.set_random_seed(7)
recaffe.Net(source, weights_file=sys.argv[1])
print("numpy.random" in sys.modules)
print(" ".join(str(float(v)) for v in rng.get_rng().uniform(4, 0, 1)))
"""


def test_a_stream_never_drawn_from_is_never_seeded(tmp_path: pathlib.Path) -> None:
    """In a fresh process, building with weights seeds no mt19937 (nor imports numpy.random, ~10 ms of
    a deploy net's start): the engine is made when the stream is first read, then gives Caffe's words."""
    weights = write_weights(tmp_path / "all.caffemodel", missing="")  # every fill skipped
    source = param(caffe_pb2.TEST)
    result = subprocess.run([sys.executable, "-c", _SERVER, str(weights)],
                            input=text_format.MessageToString(source), capture_output=True, text=True,
                            check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    imported, values = result.stdout.split("\n")[:2]
    assert imported == "False"
    eager(source, weights, seed=7)
    assert [float(v) for v in values.split()] == [float(v) for v in rng.get_rng().uniform(4, 0, 1)]


def solver_with(weights: pathlib.Path | None, seed: int) -> recaffe.Solver:
    """A solver over NET (TRAIN net and one TEST net), finetuning from ``weights`` as
    ``caffe train -weights`` does."""
    solver = caffe_pb2.SolverParameter(base_lr=0.01, test_iter=[1], test_interval=1, random_seed=seed)
    solver.net_param.CopyFrom(text_format.Parse(NET, caffe_pb2.NetParameter()))
    if weights is not None:
        solver.weights.append(str(weights))
    return recaffe.load_solver(solver)


def test_a_solver_finetuning_defers_the_fills_its_weights_overwrite(weights: pathlib.Path) -> None:
    """``Solver`` with ``weights`` (``caffe train -weights``) equals Caffe's way, building both nets
    with their fillers run and then copying the weights: weights, stream, the Dropout mask."""
    caffes = solver_with(None, seed=7)
    for net in (caffes.net, caffes.test_nets[0]):
        net.copy_trained_layers_from(weights)
    state_a = rng.get_state()
    finetuning = solver_with(weights, seed=7)
    state_b = rng.get_state()
    for a, b in ((caffes.net, finetuning.net), (caffes.test_nets[0], finetuning.test_nets[0])):
        assert_same_params(a, b)
    assert_same_stream(state_a, state_b)
    masks = []
    for s in (caffes, finetuning):
        rng.set_state(state_a)
        s.net.blob_by_name("data").data.fill_(1.0)
        s.net.forward()
        masks.append(s.net.blob_by_name("ip").data.clone())
    assert torch.equal(masks[0], masks[1]) and bool((masks[0] == 0).any())


def test_a_solver_finetuning_from_complete_weights_computes_no_fill(tmp_path: pathlib.Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    complete = write_weights(tmp_path / "all.caffemodel", missing="")
    filled: list[str] = []
    fill = fillers.fill
    monkeypatch.setattr(fillers, "fill", lambda blob, param, stream: (filled.append(param.type),
                                                                      fill(blob, param, stream)))
    solver_with(None, seed=3)
    assert len(filled) == 2 * 8  # every parameter blob of both nets, filled
    filled.clear()
    solver = solver_with(complete, seed=3)
    assert filled == [] and rng.get_rng()._deferred  # only the stream's draws, still queued
    assert torch.equal(solver.test_nets[0].layer_params["ip"][1].data, torch.arange(5) / 7 - 3)
