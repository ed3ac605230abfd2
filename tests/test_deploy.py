"""Deploy mode (Net(..., optimize=True)): outputs equal the plain net's, requested blobs stay readable."""

from __future__ import annotations

import collections
import pathlib
from collections.abc import Callable

import pytest
import torch

import recaffe
from benchmarks import models
from recaffe import deploy
from recaffe.io import prototxt
from recaffe.layer import LayerError
from recaffe.proto import caffe_pb2
from recaffe.workers import SERIAL, Workers

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
FUSIONS = FIXTURES / "deploy_fusions.prototxt"
ROOT = models.caffe_models()
DEPLOY_PROTOTXTS = sorted(ROOT.glob("**/deploy.prototxt")) if ROOT else []
RESNET = pathlib.Path(models.ALL_DEPLOY_NETS["resnet50"].net)


def seeded(net: recaffe.Net, seed: int = 0) -> recaffe.Net:
    """Weights that keep activations near unit scale (He-scaled), BatchNorm statistics and Scale
    weights of their own, and a N(0, 1) input; the same for every net built from one file."""
    generator = torch.Generator().manual_seed(seed)
    for layer in net.layers:
        if layer.type == "BatchNorm":
            mean, var, factor = (blob.data for blob in layer.blobs)
            mean.normal_(0.0, 0.5, generator=generator)
            var.uniform_(0.5, 2.0, generator=generator)
            factor.fill_(0.999)
            continue
        for i, blob in enumerate(layer.blobs):
            if layer.type in ("Scale", "Bias"):
                blob.data.normal_(1.0 if i == 0 and layer.type == "Scale" else 0.0, 0.3, generator=generator)
            elif blob.data.dim() > 1:
                blob.data.normal_(0.0, (2.0 / (blob.count() / blob.shape[0])) ** 0.5, generator=generator)
            else:
                blob.data.normal_(0.0, 0.1, generator=generator)
    for index in net.input_blob_indices:
        net.blob_list[index].data.normal_(generator=generator)
    return net


def batch_one(net: recaffe.Net) -> recaffe.Net:
    for index in net.input_blob_indices:
        blob = net.blob_list[index]
        blob.reshape((1, *blob.shape[1:]))
    net.reshape()
    return net


def without_fillers(path: pathlib.Path) -> caffe_pb2.NetParameter:
    """The net with its weight fillers dropped: ``seeded`` sets every weight anyway."""
    param = prototxt.read_net_param(path)
    for layer in param.layer:
        for typed in (layer.convolution_param, layer.inner_product_param):
            typed.ClearField("weight_filler")
            typed.ClearField("bias_filler")
    return param


def pair(path: pathlib.Path, small: bool = True) -> tuple[recaffe.Net, recaffe.Net]:
    param = without_fillers(path)
    nets = []
    for optimize in (False, True):
        net = recaffe.Net(param, recaffe.TEST, optimize=optimize)
        nets.append(seeded(batch_one(net) if small else net))
    return nets[0], nets[1]


def assert_close(plain: torch.Tensor, fused: torch.Tensor) -> None:
    scale = float(plain.abs().max())
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5 * max(scale, 1e-30))


@pytest.mark.parametrize("path", [*DEPLOY_PROTOTXTS, RESNET],
                         ids=lambda p: p.parent.name if p.name == "deploy.prototxt" else p.stem)
def test_every_deploy_net_gives_the_plain_outputs(path: pathlib.Path) -> None:
    plain, fused = pair(path)
    last = plain.layers[-1]
    before_last = plain.blob_names[plain.bottom_id_vecs[-1][0]]  # e.g. the logits before Softmax
    plain.forward()
    fused.forward(keep=[before_last])
    fused.forward(keep=[before_last])  # twice: the released memory is reused, the folding kept
    for index in plain.output_blob_indices:
        assert_close(plain.blob_list[index].data, fused.blob_list[index].data)
    assert_close(plain.blob_by_name(before_last).data, fused.blob_by_name(before_last).data)
    assert last.type in ("Softmax", "InnerProduct")


def test_the_plan_fuses_folds_and_skips() -> None:
    plain, fused = pair(FUSIONS, small=False)
    plain.forward()
    fused.forward()
    assert_close(plain.blob_by_name("prob").data, fused.blob_by_name("prob").data)
    plan = fused.deploy._plan(frozenset())
    steps = [step.layer_ids if isinstance(step, deploy._Fused) else step for step in plan.steps]
    names = [[fused.layer_names[i] for i in step] if isinstance(step, list) else fused.layer_names[step]
             for step in steps]
    assert names == ["data", ["conv1", "bn1", "sc1", "relu1"], "conv1_relu1_0_split",
                     ["conv2", "bn2", "sc2", "b2", "relu2"], ["sum"], ["ip", "relu3"], "prob"]
    assert plan.skipped == {fused.layer_names.index("drop")}


def test_a_requested_blob_stops_fusion_and_stays_readable() -> None:
    plain, fused = pair(FUSIONS, small=False)
    plain.forward()
    fused.forward(keep=["bn2"])  # bn2 is BatchNorm's own top (not in place): fusion stops there
    assert_close(plain.blob_by_name("bn2").data, fused.blob_by_name("bn2").data)
    assert_close(plain.blob_by_name("prob").data, fused.blob_by_name("prob").data)
    assert not torch.equal(fused.blob_by_name("r2").data, plain.blob_by_name("r2").data)  # released
    assert float(fused.blob_by_name("r2").data.abs().sum()) == 0.0
    fused.forward()  # then without it: fused again, same outputs
    assert_close(plain.blob_by_name("prob").data, fused.blob_by_name("prob").data)


def assert_new_weights_are_followed(plain: recaffe.Net, fused: recaffe.Net, weights: pathlib.Path, seed: int,
                                    blob: str) -> None:
    """New weights in the plain net, saved to ``weights`` and loaded into the deploy net (after it
    has run): the same ``blob`` again."""
    seeded(plain, seed=seed)
    plain.save(weights)
    fused.copy_trained_layers_from(weights)
    fused.blob_by_name("data").data.copy_(plain.blob_by_name("data").data)
    plain.forward()
    fused.forward()
    assert_close(plain.blob_by_name(blob).data, fused.blob_by_name(blob).data)


def test_new_weights_are_folded_again(tmp_path: pathlib.Path) -> None:
    plain, fused = pair(FUSIONS, small=False)
    fused.forward()
    assert_new_weights_are_followed(plain, fused, tmp_path / "w.caffemodel", 5, "prob")
    conv1 = fused.layer_params["conv1"][0].data  # unfolded: the weights loaded
    fused.copy_trained_layers_from(tmp_path / "w.caffemodel")
    assert torch.equal(conv1, plain.layer_params["conv1"][0].data)


def test_deploy_mode_is_for_test_nets_and_whole_fused_steps() -> None:
    with pytest.raises(ValueError, match="optimize=True is for TEST-phase"):
        recaffe.Net(str(FUSIONS), recaffe.TRAIN, optimize=True)
    _, fused = pair(FUSIONS, small=False)
    fused.forward(0, 0)
    with pytest.raises(LayerError, match="run as one fused step"):
        fused.forward(0, fused.layer_names.index("bn1"))


def test_pieces_on_three_threads_give_the_plain_outputs_bit_for_bit_every_run(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Every step cut into pieces (thresholds lowered) and shared by three threads: the plain net's
    outputs, and the same bits on every pass however the pieces fall to the threads."""
    from recaffe import threads
    from recaffe.math import pieces

    monkeypatch.setattr(pieces, "MIN_PIECE_MACS", 1)
    monkeypatch.setattr(pieces, "MIN_PIECE_VALUES", 1)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    monkeypatch.setattr(threads, "_governor", threads._Governor())
    try:
        for path in (FUSIONS, ROOT / "models/bvlc_alexnet/deploy.prototxt" if ROOT else None):
            if path is None:
                continue
            plain, fused = pair(path)
            plain.forward()
            runs = []
            for _ in range(3):
                fused.forward()
                runs.append(fused.blob_list[fused.output_blob_indices[0]].data.clone())
            assert_close(plain.blob_list[plain.output_blob_indices[0]].data, runs[0])
            assert all(torch.equal(run, runs[0]) for run in runs)
    finally:
        torch.set_num_threads(before)



def test_winograd_convolutions_give_the_plain_outputs_and_follow_new_weights(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """3×3 convolutions on 28×28 (F(4×4, 3×3), BatchNorm folded in) and 14×14 images with 128
    channels (F(2×2, 3×3)): the plain net's outputs; new weights give new transformed kernels."""
    from recaffe.math import winograd

    used: list[int] = []
    real = winograd.convolution
    monkeypatch.setattr(winograd, "convolution", lambda *args: used.append(args[5]) or real(*args))
    plain, fused = pair(FIXTURES / "deploy_winograd.prototxt", small=False)
    plain.forward()
    fused.forward()
    assert used == [4, 4, 2]
    assert_close(plain.blob_by_name("ip").data, fused.blob_by_name("ip").data)
    assert_new_weights_are_followed(plain, fused, tmp_path / "new.caffemodel", 3, "ip")



def test_fewer_images_than_threads_convolve_on_weights_packed_once(tmp_path: pathlib.Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Three threads: at batch 1 and 2 each convolution runs on its weights packed once for the
    input shape (``recaffe.math.onednn``), packed again for a new shape or new weights; at batch 3
    on the plain weights. The plain net's outputs throughout."""
    from recaffe import threads
    from recaffe.math import onednn

    packed: list[tuple[int, ...]] = []
    real = onednn.pack
    monkeypatch.setattr(onednn, "pack", lambda *args: packed.append(tuple(args[3])) or real(*args))
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    monkeypatch.setattr(threads, "_governor", threads._Governor())
    try:
        plain, fused = pair(FUSIONS)
        for batch in (1, 1, 2, 3, 1):
            for net in (plain, fused):
                net.blob_by_name("data").reshape((batch, 3, 12, 12))
                net.reshape()
                net.blob_by_name("data").data.copy_(torch.linspace(-2, 2, batch * 432).view(batch, 3, 12, 12))
            plain.forward()
            fused.forward()
            assert_close(plain.blob_by_name("prob").data, fused.blob_by_name("prob").data)
        shapes = [(1, 3, 12, 12), (1, 8, 10, 10)]
        assert packed == [*shapes, (2, 3, 12, 12), (2, 8, 10, 10), *shapes]
        assert_new_weights_are_followed(plain, fused, tmp_path / "new.caffemodel", 6, "prob")
        assert packed[6:] == shapes
    finally:
        torch.set_num_threads(before)


def test_packed_weights_stay_within_their_memory_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fewest output pixels first (a tie: the earlier layer), while the packed bytes fit; never a
    layer that runs as a Winograd convolution."""
    from recaffe.math import onednn

    packed: list[str] = []
    real = onednn.pack
    monkeypatch.setattr(onednn, "pack", lambda *args: packed.append(str(tuple(args[0].shape))) or real(*args))
    monkeypatch.setattr(deploy, "PACKED_BYTES", 8 * 8 * 9 * 4 + 100)  # conv2's weights, not both
    plain, fused = pair(FUSIONS)
    plain.forward()
    fused.forward()
    assert packed == [str((8, 3, 3, 3))]  # conv1 (10×10 out, like conv2, and first), 864 bytes
    assert_close(plain.blob_by_name("prob").data, fused.blob_by_name("prob").data)
    packed.clear()
    plain, fused = pair(FIXTURES / "deploy_winograd.prototxt")  # Winograd layers: nothing to pack
    plain.forward()
    fused.forward()
    assert packed == [] and fused.deploy is not None and fused.deploy._chosen_for_packing() == frozenset()
    assert_close(plain.blob_by_name("ip").data, fused.blob_by_name("ip").data)


def test_a_layer_reshapes_again_only_when_its_blobs_change_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    """Passes on the same shapes skip Reshape; a new batch, or a blob reshaped from outside, brings
    it back for the layers it reaches; the plain net's outputs throughout."""
    plain, fused = pair(FUSIONS)
    calls: collections.Counter[str] = collections.Counter()
    for layer, name in zip(fused.layers, fused.layer_names):
        real = layer.reshape
        monkeypatch.setattr(layer, "reshape",
                            lambda b, t, real=real, name=name: calls.update([name]) or real(b, t))
    fused.forward()
    first = dict(calls)
    assert first["prob"] == 1 and first["ip"] == 1
    fused.forward()
    assert dict(calls) == first
    fused.blob_by_name("ip").reshape((2, 3))  # from outside: ip's Reshape gives it back its shape
    fused.forward()
    assert calls["ip"] == 2 and calls["prob"] == 1 and calls["conv2"] == 1
    plain.forward()
    assert_close(plain.blob_by_name("prob").data, fused.blob_by_name("prob").data)
    for net in (plain, fused):
        net.blob_by_name("data").reshape((2, 3, 12, 12))
        net.reshape()
        net.blob_by_name("data").data.normal_(generator=torch.Generator().manual_seed(3))
    calls.clear()
    plain.forward()
    fused.forward()
    assert calls["conv2"] == 1 and calls["prob"] == 1
    assert_close(plain.blob_by_name("prob").data, fused.blob_by_name("prob").data)


BRANCHES = FIXTURES / "deploy_branches.prototxt"
MODULES = FIXTURES / "deploy_modules.prototxt"  # a stem, then two inception-like modules


def test_stages_follow_the_dag() -> None:
    """Independent branches share a stage; a step waits for the writers of what it reads."""
    _, fused = pair(BRANCHES, small=False)
    plan = fused.deploy._plan(frozenset())
    names = [sorted(fused.layer_names[s.layer_id if isinstance(s, deploy._Fused) else s]
                    for s in (plan.steps[k] for k in stage.steps)) for stage in plan.stages]
    # data's and a's Split layers share their bottom's storage: they come after its writer
    assert names == [["data"], ["data_data_0_split"], ["a", "b", "pool"], ["a_a_0_split", "b2"],
                     ["cat", "sig"], ["relu", "sum"]]
    released = [sorted(fused.blob_names[b] for b in stage.released) for stage in plan.stages]
    assert released[4] == ["b2", "pool"]  # read by cat alone; a's storage is read by sum after
    assert released[5] == ["a", "a_a_0_split_0", "a_a_0_split_1", "a_a_0_split_2", "sig"]


def test_a_step_that_must_keep_its_turn_runs_every_step_in_order() -> None:
    param = without_fillers(BRANCHES)
    param.layer.add(name="drop", type="Dropout", bottom=["sum"], top=["dropped"])  # not in place: a step
    net = recaffe.Net(param, recaffe.TEST, optimize=True)
    assert net.deploy._plan(frozenset()).stages == []


def test_stages_on_three_threads_give_the_plain_outputs_bit_for_bit_every_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Nets with branches (a small one, GoogLeNet) at batch 1 on three threads: steps of a stage run
    at once, and the outputs are the plain net's, the same bits on every pass."""
    from recaffe import threads

    before = torch.get_num_threads()
    torch.set_num_threads(3)
    monkeypatch.setattr(threads, "_governor", threads._Governor())
    try:
        googlenet = ROOT / "models/bvlc_googlenet/deploy.prototxt" if ROOT else None
        for path, passes in ((BRANCHES, 100), (googlenet, 3)):
            if path is None:
                continue
            plain, fused = pair(path)
            plain.forward()
            runs = []
            for _ in range(passes):  # (many: two steps reading one blob at once once raced to convert it)
                fused.forward()
                runs.append(fused.blob_list[fused.output_blob_indices[0]].data.clone())
            assert_close(plain.blob_list[plain.output_blob_indices[0]].data, runs[0])
            assert all(torch.equal(run, runs[0]) for run in runs)
            assert len(fused.deploy._plan(frozenset()).stages) < len(fused.deploy._plan(frozenset()).steps)
            fused.before_forward.append(lambda layer_id: None)  # a watched pass: step by step
            fused.forward()
            assert torch.equal(fused.blob_list[fused.output_blob_indices[0]].data, runs[0])
    finally:
        torch.set_num_threads(before)


def threads_per_step(monkeypatch: pytest.MonkeyPatch, path: pathlib.Path, count: int,
                     min_macs: int = 80_000) -> dict[str, set[int]]:
    """The thread counts each step's kernels ran on (PyTorch's threads, or the workers taking its
    pieces), in a deploy pass by stages and one step by step (the same bits, and the plain net's
    values), at batch 1 on ``count`` threads, where a convolution of at least ``min_macs``
    multiply-adds per thread shares its own work well."""
    from recaffe import threads
    from recaffe.math import pieces

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    monkeypatch.setattr(threads, "_governor", threads._Governor())
    monkeypatch.setattr(pieces, "MIN_PIECE_MACS", min_macs)
    seen: dict[str, set[int]] = {}
    real = deploy.DeployRunner._run_step

    def spy(self: deploy.DeployRunner, step: int | deploy._Fused, workers: Workers) -> object:
        name = self.net.layer_names[step.layer_id if isinstance(step, deploy._Fused) else step]
        seen.setdefault(name, set()).add(max(torch.get_num_threads(), workers.count))  # PyTorch's or pieces
        return real(self, step, workers)

    monkeypatch.setattr(deploy.DeployRunner, "_run_step", spy)
    try:
        plain, fused = pair(path, small=False)
        plain.forward()
        fused.forward()
        by_stages = fused.blob_list[fused.output_blob_indices[0]].data.clone()
        fused.before_forward.append(lambda layer_id: None)  # a watched pass: step by step
        fused.forward()
        assert torch.equal(fused.blob_list[fused.output_blob_indices[0]].data, by_stages)
        assert_close(plain.blob_list[plain.output_blob_indices[0]].data, by_stages)
    finally:
        torch.set_num_threads(before)
    return seen


def test_at_batch_1_a_step_runs_on_pytorchs_threads_or_at_once_with_others_on_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Three threads, one image: the small steps of a stage run at once, each on one thread; the
    others on PyTorch's three threads (``workers.native``), in a pass by stages and step by step."""
    seen = threads_per_step(monkeypatch, BRANCHES, 3, 8 * 8 * 100 * 9 // 3)  # b and b2 share their work well
    assert all(seen[name] == {1} for name in ("a", "pool", "cat", "sig", "relu", "sum"))  # at once
    assert seen["b"] == seen["b2"] == seen["data_data_0_split"] == {3}  # alone in their stage


def test_a_stage_wider_than_the_threads_runs_every_step_at_once_and_the_job_goes_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two threads, one image: a module's stages have more steps than threads, so all of them run
    at once, each on one thread, the big 3×3 convolution too; the Concat and the Pooling after it,
    small lone steps after steps at once, go on in the same job; the stem's convolution, alone in
    its stage, runs on PyTorch's two threads. A pass step by step gives the same bits."""
    seen = threads_per_step(monkeypatch, MODULES, 2)
    modules = [name for name in seen if name.startswith(("m1/", "m2/"))]
    assert "m1/3x3" in modules and len(modules) == 16  # 8 steps a module (its ReLU fused into m1/3x3)
    assert all(seen[name] == {1} for name in [*modules, "mid"])
    assert seen["stem"] == {2}


def test_a_lone_step_too_big_to_join_runs_on_all_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lone step writing more than ``JOINED_VALUES`` values ends the job: it runs on PyTorch's
    threads, and so does the small step after it, which follows no steps at once."""
    monkeypatch.setattr(deploy, "JOINED_VALUES", 1500)  # m1/output holds 40 × 12 × 12, mid 40 × 6 × 6
    seen = threads_per_step(monkeypatch, MODULES, 2)
    assert seen["m1/output"] == seen["mid"] == {2}
    assert seen["m1/3x3"] == seen["m2/output"] == {1}  # (m2/output: 40 × 6 × 6 values)


def test_a_job_through_the_modules_releases_their_blobs_as_it_goes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first module's blobs are released inside the job that runs both modules, once the steps
    using them have run, not at the job's end (a job's pieces run here in their order, on the
    calling thread)."""
    from recaffe import threads
    from recaffe.blob import Blob

    events: list[tuple[str, str]] = []
    names: dict[int, str] = {}
    release = Blob.release_data
    run_step = deploy.DeployRunner._run_step

    def released(blob: Blob) -> None:
        events.append(("released", names.get(id(blob), "")))
        release(blob)

    def ran(self: deploy.DeployRunner, step: int | deploy._Fused, workers: Workers) -> object:
        layer_id = step.layer_id if isinstance(step, deploy._Fused) else step
        events.append(("ran", self.net.layer_names[layer_id]))
        return run_step(self, step, workers)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.setattr(threads, "_governor", threads._Governor())
    monkeypatch.setattr(Workers, "run", lambda self, pieces, needs=None: [piece() for piece in pieces])
    monkeypatch.setattr(Blob, "release_data", released)
    monkeypatch.setattr(deploy.DeployRunner, "_run_step", ran)
    try:
        _, fused = pair(MODULES, small=False)
        names.update((id(blob), name) for blob, name in zip(fused.blob_list, fused.blob_names))
        fused.forward()
    finally:
        torch.set_num_threads(before)
    assert ("ran", "m1/3x3") in events  # (at once with the others: in the job)
    assert events.index(("released", "m1/3x3")) < events.index(("ran", "m2/1x1"))


COMPILED = FIXTURES / "deploy_compiled.prototxt"  # LRN, MAX and AVE pooling, Winograd, an inner product


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("built", [True, False])
def test_lrn_pooling_winograd_and_inner_products_run_on_compiled_kernels_where_built(
        monkeypatch: pytest.MonkeyPatch, built: bool, threads: int) -> None:
    """Deploy mode runs LRN across channels, MAX and AVE pooling, Winograd's transforms, a
    one-image inner product and a small Softmax on ``recaffe.math.compiled``'s kernels; where they
    are not built (no C compiler, ``RECAFFE_COMPILED=off``), on the layers' own: the plain net's
    outputs either way, and the same bits in a pass by stages and one step by step."""
    from recaffe import threads as recaffe_threads
    from recaffe.math import compiled

    if built and compiled.load() is None:
        pytest.skip("the compiled kernels cannot be built here (no C compiler)")
    if not built:
        monkeypatch.setattr(compiled, "load", lambda: None)
    from recaffe.layers.vision.lrn import LRNLayer
    from recaffe.layers.vision.pooling import PoolingLayer

    calls: collections.Counter[str] = collections.Counter()
    for owner, name in ((compiled, "lrn_across"), (compiled, "pool"), (compiled, "matvec"),
                        (compiled, "winograd_input"), (compiled, "softmax"), (LRNLayer, "forward"),
                        (PoolingLayer, "forward")):
        real = getattr(owner, name)

        def counted(*args: object, real: Callable[..., object] = real, name: str = f"{owner.__name__}.{name}",
                    **kwargs: object) -> object:
            calls[name] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    monkeypatch.setattr(recaffe_threads, "_governor", recaffe_threads._Governor())
    try:
        plain, fused = pair(COMPILED)
        plain.forward()
        calls.clear()  # (the plain net's layers ran their own)
        fused.forward()
        by_stages = fused.blob_list[fused.output_blob_indices[0]].data.clone()
        fused.before_forward.append(lambda layer_id: None)  # a watched pass: step by step
        fused.forward()
    finally:
        torch.set_num_threads(before)
    assert torch.equal(fused.blob_list[fused.output_blob_indices[0]].data, by_stages)
    assert_close(plain.blob_list[plain.output_blob_indices[0]].data, by_stages)
    kernels = ("lrn_across", "pool", "matvec", "winograd_input", "softmax")
    ran = {name: calls[f"recaffe.math.compiled.{name}"] for name in kernels}
    own = (calls["LRNLayer.forward"], calls["PoolingLayer.forward"])
    if built:  # two passes: each kernel once a step and pass, the layers' own never
        assert ran == {"lrn_across": 2, "pool": 4, "matvec": 2, "winograd_input": 2, "softmax": 2}
        assert own == (0, 0)
    else:
        assert ran["winograd_input"] == 0 and own == (2, 4)


def test_a_softmax_too_large_for_the_compiled_kernel_keeps_pytorchs_threads(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A Softmax of more than ``compiled.SOFTMAX_VALUES`` values (a segmentation net's) runs as
    before, on PyTorch's threads, not on the compiled kernel's one thread."""
    from recaffe.math import compiled

    if compiled.load() is None:
        pytest.skip("the compiled kernels cannot be built here (no C compiler)")
    monkeypatch.setattr(compiled, "SOFTMAX_VALUES", 5)  # the fixture's 10 scores are more
    seen = threads_per_step(monkeypatch, COMPILED, 2)
    assert seen["prob"] == {2} and seen["fc"] == {2}
    _, fused = pair(COMPILED)
    assert fused.deploy._compiled_kernel(fused.layer_names.index("prob"), SERIAL) is None
