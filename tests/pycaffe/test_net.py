"""caffe.Net: construction, the dicts, live views, forward/backward with keywords and ranges,
batching, weights I/O, callbacks and the host-mirror mode used for device blobs."""

from __future__ import annotations

import logging
from collections import OrderedDict

import numpy as np
import pytest

import caffe
from recaffe.pylayer import blobs as _blob
from tests.pycaffe.conftest import TINY_NET

X = np.arange(12, dtype=np.float32).reshape(4, 3) / 10 - 0.5
LABELS = np.array([0, 4, 2, 1], dtype=np.float32)


def reference(net: caffe.Net, x: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """The tiny net in numpy, from its current parameters."""
    w, bias = net.params["ip_a"][0].data, net.params["ip_a"][1].data
    a = np.maximum(x @ w.T + bias, 0)
    s = a + x @ w.T
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    loss = -np.log(p[np.arange(len(x)), labels.astype(int)]).mean()
    ds = p.copy()
    ds[np.arange(len(x)), labels.astype(int)] -= 1
    ds /= len(x)
    dx = (ds * (a > 0)) @ w + ds @ w
    return {"a": a, "s": s, "loss": np.float32(loss), "ds": ds, "dx": dx}


# ------------------------------------------------------------------ construction
def test_constructor_forms(write_net, tmp_path, tiny_net) -> None:
    path = write_net(TINY_NET)
    weights = str(tmp_path / "w.caffemodel")
    tiny_net.save(weights)
    named = caffe.Net(path, caffe.TEST, weights=weights)
    legacy = caffe.Net(path, weights, caffe.TEST)
    keywords = caffe.Net(network_file=path, phase=caffe.TEST, level=0, stages=[], weights=weights)
    for net in (named, legacy, keywords):
        np.testing.assert_array_equal(net.params["ip_a"][0].data, tiny_net.params["ip_a"][0].data)


def test_missing_files_raise_runtime_error(write_net, tmp_path) -> None:
    with pytest.raises(RuntimeError, match="Could not open file .*nope.prototxt"):
        caffe.Net(str(tmp_path / "nope.prototxt"), caffe.TEST)
    with pytest.raises(RuntimeError, match="Could not open file .*nope.caffemodel"):
        caffe.Net(write_net(TINY_NET), caffe.TEST, weights=str(tmp_path / "nope.caffemodel"))
    with pytest.raises(RuntimeError, match="Could not open file"):
        caffe.Net(write_net(TINY_NET), str(tmp_path / "nope.caffemodel"), caffe.TEST)


def test_levels_and_stages_select_layers(write_net) -> None:
    path = write_net("""
        layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 } } }
        layer { name: "l1" type: "ReLU" bottom: "data" top: "l1" include { min_level: 1 } }
        layer { name: "sa" type: "ReLU" bottom: "data" top: "sa" include { stage: "A" } }
        layer { name: "train" type: "ReLU" bottom: "data" top: "t" include { phase: TRAIN } }""")
    assert caffe.Net(path, caffe.TEST)._layer_names == ["data"]
    assert caffe.Net(path, caffe.TEST, level=1)._layer_names == ["data", "l1"]
    assert caffe.Net(path, caffe.TEST, stages=["A"])._layer_names == ["data", "sa"]
    assert caffe.Net(path, caffe.TRAIN)._layer_names == ["data", "train"]


def test_legacy_input_fields_become_an_input_layer(write_net) -> None:
    net = caffe.Net(write_net('input: "x" input_shape { dim: 2 dim: 3 }\n'
                              'layer { name: "r" type: "ReLU" bottom: "x" top: "y" }'), caffe.TEST)
    assert net.inputs == ["x"]
    assert net.blobs["x"].shape == [2, 3]
    assert net.layers[0].type == "Input"


# ------------------------------------------------------------------ structure
def test_names_and_dicts(tiny_net) -> None:
    net = tiny_net
    assert net.inputs == ["data", "label"]
    assert net.outputs == ["loss"]
    assert net._layer_names == ["data", "data_data_0_split", "ip_a", "relu", "ip_b", "sum", "loss"]
    assert list(net.blobs) == ["data", "label", "data_data_0_split_0", "data_data_0_split_1",
                               "a", "b", "s", "loss"]
    assert [net._blob_names[i] for i in net._inputs] == net.inputs
    assert net.top_names == OrderedDict([
        ("data", ["data", "label"]), ("data_data_0_split", ["data_data_0_split_0", "data_data_0_split_1"]),
        ("ip_a", ["a"]), ("relu", ["a"]), ("ip_b", ["b"]), ("sum", ["s"]), ("loss", ["loss"])])
    assert net.bottom_names["sum"] == ["a", "b"]
    assert net.bottom_names["data"] == []
    assert net.blob_loss_weights["loss"] == 1.0
    assert net.blob_loss_weights["s"] == 0.0
    assert [layer.type for layer in net.layer_dict.values()] == [
        "Input", "Split", "InnerProduct", "ReLU", "InnerProduct", "Eltwise", "SoftmaxWithLoss"]
    assert list(net.layer_dict) == net._layer_names


def test_params_list_layers_with_blobs_and_share_storage(tiny_net) -> None:
    params = tiny_net.params
    assert list(params) == ["ip_a", "ip_b"]
    assert [len(v) for v in params.values()] == [2, 1]
    assert params["ip_a"][0].shape == [5, 3]
    params["ip_a"][0].data[...] = 0.25  # a shared weight: both users see the write
    assert (params["ip_b"][0].data == 0.25).all()
    assert [b.shape for b in params["ip_a"]] == [[5, 3], [5]]
    assert params["ip_a"][-1].shape == [5]
    assert params["ip_a"][0] in params["ip_a"]


def test_blob_views_are_live_and_stable(tiny_net) -> None:
    blob = tiny_net.blobs["data"]
    assert blob is tiny_net.blobs["data"] and blob is tiny_net._blobs[0]
    assert tiny_net.params["ip_a"][0] is tiny_net.params["ip_a"][0]
    assert (blob.num, blob.channels, blob.height, blob.width, blob.count) == (4, 3, 1, 1, 12)
    view = blob.data
    assert view.dtype == np.float32
    blob.data[...] = X
    np.testing.assert_array_equal(tiny_net._net.blob_by_name("data").data.numpy(), X)
    tiny_net._net.blob_by_name("data").data.fill_(2.0)
    assert (view == 2.0).all()
    blob.reshape(2, 3)
    assert blob.shape == [2, 3] and blob.data.shape == (2, 3)
    assert tiny_net.blobs["data"].shape == [2, 3]



VISION_NET = """force_backward: true
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 9 dim: 9 } } }
layer { name: "conv" type: "Convolution" bottom: "x" top: "conv"
        convolution_param { num_output: 8 kernel_size: 3 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { kernel_size: 2 stride: 2 } }
layer { name: "norm" type: "LRN" bottom: "pool" top: "norm" lrn_param { local_size: 3 } }
"""


def test_arrays_kept_across_passes_stay_live(write_net) -> None:
    """As views of Caffe's CPU blobs: arrays taken once show every later forward's and backward's
    values, also for the blobs recaffe would hold channels-last."""
    net = caffe.Net(write_net(VISION_NET), caffe.TEST)
    kept = {name: (blob.data, blob.diff) for name, blob in net.blobs.items()}
    rng = np.random.default_rng(0)
    for _ in range(2):
        net.blobs["x"].data[...] = rng.standard_normal((2, 3, 9, 9))
        net.forward()
        net.blobs["norm"].diff[...] = rng.standard_normal(net.blobs["norm"].data.shape)
        net.backward()
        fresh = caffe.Net(write_net(VISION_NET), caffe.TEST)  # nothing viewed before its passes
        fresh.params["conv"][0].data[...] = net.params["conv"][0].data
        fresh._net.blob_by_name("x").data.copy_(net._net.blob_by_name("x").data)
        fresh._net.forward()
        fresh._net.blob_by_name("norm").diff.copy_(net._net.blob_by_name("norm").diff)
        fresh._net.backward()
        for name, (data, diff) in kept.items():
            np.testing.assert_array_equal(data, fresh._net.blob_by_name(name).data.numpy(), err_msg=name)
            if name != "x":
                np.testing.assert_array_equal(diff, fresh._net.blob_by_name(name).diff.numpy(),
                                              err_msg=name)

def test_layer_views(tiny_net) -> None:
    ip = tiny_net.layers[2]
    assert ip.type == "InnerProduct"
    assert len(ip.blobs) == 2
    assert ip.blobs[0] is tiny_net.params["ip_a"][0]
    assert "InnerProduct" in repr(ip)


# ------------------------------------------------------------------ forward / backward
def test_forward_backward_with_keywords(tiny_net) -> None:
    out = tiny_net.forward(data=X, label=LABELS)
    want = reference(tiny_net, X, LABELS)
    assert set(out) == {"loss"}
    np.testing.assert_allclose(out["loss"], want["loss"], rtol=1e-5)
    np.testing.assert_allclose(tiny_net.blobs["s"].data, want["s"], rtol=1e-5, atol=1e-6)
    diffs = tiny_net.backward()
    assert set(diffs) == {"data", "label"}
    np.testing.assert_allclose(diffs["data"], want["dx"], rtol=1e-4, atol=1e-6)
    assert diffs["data"] is not None and np.shares_memory(diffs["data"], tiny_net.blobs["data"].diff)


def test_forward_returns_live_views_and_extra_blobs(tiny_net) -> None:
    out = tiny_net.forward(blobs=["a", "s"], data=X, label=LABELS)
    assert set(out) == {"loss", "a", "s"}
    assert np.shares_memory(out["s"], tiny_net.blobs["s"].data)
    tiny_net.forward(data=X * 2, label=LABELS)
    np.testing.assert_allclose(out["s"], reference(tiny_net, X * 2, LABELS)["s"], rtol=1e-5, atol=1e-6)


def test_forward_keyword_errors(tiny_net) -> None:
    with pytest.raises(Exception, match="Input blob arguments do not match net inputs"):
        tiny_net.forward(data=X)
    with pytest.raises(Exception, match="Input is not batch sized"):
        tiny_net.forward(data=X[:2], label=LABELS[:2])
    tiny_net.forward(data=X, label=LABELS)
    with pytest.raises(Exception, match="Top diff arguments do not match net outputs"):
        tiny_net.backward(s=np.zeros((4, 5)))


def test_forward_and_backward_ranges(tiny_net) -> None:
    tiny_net.forward(data=X, label=LABELS)
    tiny_net.blobs["a"].data[...] = 1.0
    out = tiny_net.forward(start="sum", end="sum")
    assert set(out) == {"s"}
    np.testing.assert_allclose(out["s"], 1.0 + tiny_net.blobs["b"].data)
    tiny_net.blobs["s"].diff[...] = 3.0
    diffs = tiny_net.backward(start="sum", end="sum", diffs=["s"])
    assert set(diffs) == {"a", "b", "s"}
    assert (diffs["a"] == 3.0).all() and (diffs["b"] == 3.0).all()


IP_NET = """
    force_backward: true
    layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 4 dim: 3 } } }
    layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
            inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }"""


def test_backward_with_output_diffs(write_net) -> None:
    net = caffe.Net(write_net(IP_NET), caffe.TEST)
    net.forward(data=X)
    top_diff = np.random.default_rng(3).normal(size=(4, 2)).astype(np.float32)
    diffs = net.backward(ip=top_diff)
    np.testing.assert_allclose(diffs["data"], top_diff @ net.params["ip"][0].data, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.params["ip"][0].diff, top_diff.T @ X, rtol=1e-5, atol=1e-6)
    with pytest.raises(Exception, match="Diff is not batch sized"):
        net.backward(ip=top_diff[:2])


def test_param_diffs_accumulate_until_cleared(tiny_net) -> None:
    tiny_net.forward(data=X, label=LABELS)
    tiny_net.backward()
    once = tiny_net.params["ip_a"][0].diff.copy()
    assert np.abs(once).max() > 0
    tiny_net.backward()
    np.testing.assert_allclose(tiny_net.params["ip_a"][0].diff, 2 * once, rtol=1e-6)
    tiny_net.clear_param_diffs()
    assert (tiny_net.params["ip_a"][0].diff == 0).all()
    assert (tiny_net.params["ip_b"][0].diff == 0).all()


def test_forward_all_pads_the_last_batch(write_net) -> None:
    net = caffe.Net(write_net(IP_NET), caffe.TEST)
    inputs = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    seen: list[np.ndarray] = []
    net.before_forward(lambda i: seen.append(net.blobs["data"].data.copy()) if i == 0 else None)
    out = net.forward_all(blobs=["data"], data=inputs)
    assert set(out) == {"ip", "data"}
    assert out["ip"].shape == (10, 2)
    np.testing.assert_allclose(out["ip"], inputs @ net.params["ip"][0].data.T + net.params["ip"][1].data,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out["data"], inputs)
    assert len(seen) == 3
    assert (seen[2][2:] == 0).all()  # the last batch is padded with zeros
    batches = list(net._batch({"data": inputs}))
    assert [b["data"].shape for b in batches] == [(4, 3)] * 3


def test_forward_backward_all(write_net) -> None:
    net = caffe.Net(write_net("""
        force_backward: true
        layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
        layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
                inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }"""), caffe.TEST)
    inputs = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    top_diffs = np.random.default_rng(2).normal(size=(5, 2)).astype(np.float32)
    outs, diffs = net.forward_backward_all(data=inputs, ip=top_diffs)
    w = net.params["ip"][0].data
    assert outs["ip"].shape == (5, 2) and diffs["data"].shape == (5, 3)
    np.testing.assert_allclose(diffs["data"], top_diffs @ w, rtol=1e-5, atol=1e-6)


def test_reshape_propagates(tiny_net) -> None:
    tiny_net.blobs["data"].reshape(6, 3)
    tiny_net.blobs["label"].reshape(6)
    tiny_net.reshape()
    assert tiny_net.blobs["s"].shape == [6, 5]


# ------------------------------------------------------------------ weights
def test_save_and_copy_from(tiny_net, tmp_path, write_net) -> None:
    path = str(tmp_path / "tiny.caffemodel")
    tiny_net.save(path)
    caffe.set_random_seed(5)
    other = caffe.Net(write_net(TINY_NET), caffe.TRAIN)
    assert not np.array_equal(other.params["ip_a"][0].data, tiny_net.params["ip_a"][0].data)
    other.copy_from(path)
    for name, blobs in tiny_net.params.items():
        for mine, theirs in zip(blobs, other.params[name]):
            np.testing.assert_array_equal(mine.data, theirs.data)


def test_save_and_load_hdf5(tiny_net, tmp_path, write_net) -> None:
    path = str(tmp_path / "tiny.h5")
    tiny_net.save_hdf5(path)
    caffe.set_random_seed(5)
    other = caffe.Net(write_net(TINY_NET), caffe.TRAIN)
    other.load_hdf5(path)
    for name, blobs in tiny_net.params.items():
        for mine, theirs in zip(blobs, other.params[name]):
            np.testing.assert_array_equal(mine.data, theirs.data)
    caffe.set_random_seed(6)
    by_copy = caffe.Net(write_net(TINY_NET), caffe.TRAIN)
    by_copy.copy_from(path)  # copy_from recognises HDF5 too
    np.testing.assert_array_equal(by_copy.params["ip_a"][1].data, tiny_net.params["ip_a"][1].data)


def test_share_with_shares_data(tiny_net, write_net) -> None:
    other = caffe.Net(write_net(TINY_NET), caffe.TEST)
    other.share_with(tiny_net)
    tiny_net.params["ip_a"][1].data[...] = 7.0
    assert (other.params["ip_a"][1].data == 7.0).all()


def test_blobs_outlive_the_net(tiny_net) -> None:
    blobs = list(tiny_net.blobs.values())
    params = [p for vec in tiny_net.params.values() for p in vec]
    del tiny_net
    assert sum(float(b.data.sum() + b.diff.sum()) for b in blobs + params) == pytest.approx(
        sum(float(b.data.sum() + b.diff.sum()) for b in blobs + params))


# ------------------------------------------------------------------ callbacks, misc
def test_callbacks_see_layer_indices_in_order(tiny_net) -> None:
    calls: list[tuple[str, int]] = []
    for hook in ("before_forward", "after_forward", "before_backward", "after_backward"):
        getattr(tiny_net, hook)(lambda i, hook=hook: calls.append((hook, i)))
    tiny_net.forward(data=X, label=LABELS)
    n = len(tiny_net.layers)
    assert calls == [(h, i) for i in range(n) for h in ("before_forward", "after_forward")]
    calls.clear()
    tiny_net.backward()
    assert calls == [(h, i) for i in reversed(range(n)) for h in ("before_backward", "after_backward")]


def test_set_input_arrays_needs_a_memory_data_layer(tiny_net) -> None:
    with pytest.raises(RuntimeError, match="first layer is a MemoryDataLayer"):
        tiny_net.set_input_arrays(np.zeros((4, 3, 1, 1), np.float32), np.zeros(4, np.float32))


def test_module_functions(caplog) -> None:
    assert {"InnerProduct", "Input", "Python"} <= set(caffe.layer_type_list())
    assert caffe.layer_type_list() == sorted(caffe.layer_type_list())
    assert (caffe.TRAIN, caffe.TEST) == (0, 1)
    assert isinstance(caffe.__version__, str)
    assert caffe.has_nccl() is True  # torch.distributed: gloo here, NCCL with CUDA
    caffe.set_solver_count(1)
    caffe.set_solver_rank(0)
    caffe.set_multiprocess(False)
    assert (caffe.solver_count(), caffe.solver_rank()) == (1, 0)
    caffe.set_mode_cpu()
    caffe.set_device(0)
    with caplog.at_level(logging.INFO, logger="recaffe"):
        caffe.log("hello from pycaffe")
    assert "hello from pycaffe" in caplog.text


def test_init_log_writes_glog_lines(capsys) -> None:
    logger = logging.getLogger("recaffe")
    level, handlers, propagate = logger.level, list(logger.handlers), logger.propagate
    try:
        caffe.init_log(0, True)
        caffe.log("glog style")
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert line.startswith("I") and line.endswith("] glog style")
        assert "_caffe.py:" in line
        caffe.init_log(2)
        caffe.log("quiet now")
        assert "quiet now" not in capsys.readouterr().err
        caffe.init_log()  # glog's default: INFO is logged, but only ERROR reaches stderr
        caffe.log("below the threshold")
        logging.getLogger("recaffe.pycaffe").error("an error")
        err = capsys.readouterr().err
        assert "below the threshold" not in err and "] an error" in err
    finally:  # leave the logger as other tests expect it
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.propagate = propagate


def test_timer() -> None:
    timer = caffe.Timer()
    assert timer.ms == 0.0
    timer.start()
    sum(range(10000))
    timer.stop()
    first = timer.ms
    assert first > 0
    assert timer.ms == first


def test_nccl_with_one_solver_does_nothing() -> None:
    uid = caffe.NCCL.new_uid()
    assert isinstance(uid, bytes) and uid.startswith(b"recaffe-rendezvous://127.0.0.1:")
    nccl = caffe.NCCL(None, uid)
    nccl.bcast()
    nccl.on_start()
    nccl.on_gradients_ready()
    nccl(0)
    caffe.set_solver_count(2)
    try:
        with pytest.raises(RuntimeError, match="needs the solver of this rank"):
            caffe.NCCL(None, uid)
    finally:
        caffe.set_solver_count(1)


# ------------------------------------------------------------------ host mirrors (device blobs)
def test_host_mirrors_sync_like_synced_memory(tiny_net, monkeypatch) -> None:
    """With blobs numpy cannot view (CUDA), arrays are host mirrors written back before running."""
    monkeypatch.setattr(_blob, "needs_mirror", lambda tensor: True)
    data = tiny_net.blobs["data"].data
    data[...] = X
    tiny_net.blobs["label"].data[...] = LABELS
    assert not np.array_equal(tiny_net._net.blob_by_name("data").data.numpy(), X)  # not yet
    out = tiny_net.forward()
    np.testing.assert_array_equal(tiny_net._net.blob_by_name("data").data.numpy(), X)
    want = reference(tiny_net, X, LABELS)
    np.testing.assert_allclose(out["loss"], want["loss"], rtol=1e-5)
    s = tiny_net.blobs["s"].data
    tiny_net.forward(data=2 * X, label=LABELS)
    np.testing.assert_allclose(s, want["s"], rtol=1e-5, atol=1e-6)  # a kept mirror is stale...
    fresh = tiny_net.blobs["s"].data  # ...until read again, into the same buffer
    assert fresh is s
    np.testing.assert_allclose(s, reference(tiny_net, 2 * X, LABELS)["s"], rtol=1e-5, atol=1e-6)
    tiny_net.params["ip_a"][1].data[...] = 0.5
    tiny_net.clear_param_diffs()
    assert (tiny_net._net.layer_by_name("ip_a").blobs[1].data.numpy() == 0.5).all()


MEMORY_NET = """
layer { name: "mem" type: "MemoryData" top: "data" top: "label"
        memory_data_param { batch_size: 2 channels: 3 height: 1 width: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }
layer { name: "quiet" type: "Silence" bottom: "label" }
"""


def test_set_input_arrays_feeds_memory_data(write_net) -> None:
    net = caffe.Net(write_net(MEMORY_NET), caffe.TEST)
    data = np.arange(4 * 6, dtype=np.float32).reshape(4, 3, 1, 2)
    labels = np.array([5, 6, 7, 8], dtype=np.float32)
    net.set_input_arrays(data, labels)
    for start in (0, 2, 0):  # batches cycle through the arrays
        net.forward()
        np.testing.assert_array_equal(net.blobs["data"].data, data[start:start + 2])
        np.testing.assert_array_equal(net.blobs["label"].data.ravel(), labels[start:start + 2])
    for bad_data, bad_labels, message in [
        (np.ascontiguousarray(data[:, :2]), labels, "data array has wrong number of channels"),
        (data.astype(np.float64), labels, "data array must be float32"),
        (data[:, :, :, ::-1], labels, "data array must be C contiguous"),
        (data.reshape(4, 6), labels, "data array must be 4-d"),
        (data, labels[:3], "data and labels must have the same first dimension"),
        (data[:3], labels[:3], "multiple of batch size"),
    ]:
        with pytest.raises(RuntimeError, match=message):
            net.set_input_arrays(bad_data, bad_labels)
