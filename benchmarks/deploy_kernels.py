"""Deploy mode's kernels and batch-1 passes, measured piece by piece.

    python -m benchmarks.deploy_kernels [--reps 9] [--nets caffenet,googlenet,resnet50] [--sections 1,...,7]

1. **Winograd against the direct kernel**, for 3×3 layers of GoogLeNet, ResNet-50 and CaffeNet
   (with the tiles ``recaffe.math.winograd.tile_size`` gives them; F(4×4, 3×3) on those it leaves
   direct): one layer's time with its ReLU, on one thread and on two (``recaffe.workers``),
   alternating direct / Winograd in one process. Each timed call gets an input and weights of its
   own out of four, after 32 MB of other memory has been written, so the caches are as cold as
   inside a net. Median of ``--reps``.
   On two threads a single image runs as deploy mode runs it, on PyTorch's own threads
   (``workers.native``); a batch is cut into pieces by images.
2. **Handing one image's work over**: a convolution of one image on one thread, cut in two halves
   (of its output channels) that the calling thread and a woken worker share, and on PyTorch's two
   threads, as deploy mode runs it at batch 1 (cold caches as above, median of ``--reps``).
3. **Stages at batch 1**: a deploy net's pass with the steps of a stage run at once against the same
   net step by step (a no-op ``before_forward`` callback makes a pass keep the layers' order), on two
   threads, alternating in one process, median of ``--reps``.
4. **Packed weights at batch 1** (``recaffe.math.onednn``): one image's convolution with its ReLU on
   PyTorch's two threads, its weights handed to oneDNN as they are (reordered at every call) and
   packed once; cold caches as above, median of ``--reps``.
5. **A batch-1 pass with and without the fifth pass's changes**, on two threads: stage by stage (a
   job per stage, the steps that do not run at once after it, as before), then with the steps of
   consecutive stages chained into one job, then also without Reshape where the shapes are those
   of the last pass (the current pass). The earlier ways are re-created here by replacing
   ``DeployRunner._forward_by_stages`` and ``DeployRunner._forward``; weights are not packed in
   any of the three (``deploy.PACKED_BYTES = 0``), so the rows show these changes alone.
   Alternating in one process, each pass's time over the current pass's, median of ``--reps``.
6. **Which steps run at once at batch 1**, on two threads: the small steps of each stage (before the
   sixth pass) against every step of a stage wider than the threads, with small lone steps after
   such steps going on in the same job (``DeployRunner._together``), alternating in one process,
   the new pass's time over the old, median of ``--reps``.
7. **Compiled kernels** (``recaffe.math.compiled``) against PyTorch's, alternating in one process
   (the compiled ones turned off by replacing ``compiled.load``): single kernels with cold caches
   as above (LRN, pooling, Winograd on one thread; an inner product's matrix-vector product for one
   image in two pieces on two threads, as deploy mode cuts it), then batch-1 passes on two
   threads, median of ``--reps``.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import torch

from benchmarks import models
from recaffe import deploy
from recaffe.blob import Blob
from recaffe.layers.vision.lrn import LRNLayer
from recaffe.math import compiled, onednn, pieces, pooling, winograd
from recaffe.math.im2col import Geometry
from recaffe.net import Net
from recaffe.proto import caffe_pb2
from recaffe.workers import SERIAL, Workers, native, pool

# (images, in channels, out channels, size): GoogLeNet's conv2/3x3, inception 3b and 4e, ResNet-50's
# res2 (left direct: the row shows F(4×4, 3×3) on it), res3 and res4 3×3 layers, CaffeNet's conv3,
# and some at batch 10
LAYERS = [(1, 64, 192, 56), (1, 128, 192, 28), (1, 160, 320, 14), (1, 64, 64, 56), (1, 128, 128, 28),
          (1, 256, 256, 14), (1, 256, 384, 13), (10, 128, 192, 28), (10, 256, 256, 14), (10, 96, 208, 14)]
GEOMETRY = Geometry((3, 3), (1, 1), (1, 1), (1, 1))


def median_ms(call: Callable[[int], object], reps: int, flush: torch.Tensor) -> float:
    times = []
    for i in range(reps):
        flush.fill_(float(i))
        start = time.perf_counter()
        call(i % 4)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def winograd_rows(reps: int) -> list[str]:
    flush = torch.empty(8 << 20)
    rows = []
    for images, c, k, size in LAYERS:
        m = winograd.tile_size((images, c, size, size), (k, c, 3, 3), (1, 1), (1, 1), (1, 1), 1) or 4
        generator = torch.Generator().manual_seed(0)
        xs = [torch.randn(images, c, size, size, generator=generator) for _ in range(4)]
        ws = [torch.randn(k, c, 3, 3, generator=generator) for _ in range(4)]
        xs, ws = ([t.contiguous(memory_format=torch.channels_last) for t in ts] for ts in (xs, ws))
        us = [winograd.kernels(w, m) for w in ws]
        bias = torch.randn(k, generator=generator)
        cells = [f"{images} × {c}→{k} at {size}×{size}", f"F({m}×{m}, 3×3)"]
        for threads in (1, 2):
            direct = functools.partial(_as_deploy_runs, threads, images,
                                       functools.partial(_direct, xs, ws, bias))
            fast = functools.partial(_as_deploy_runs, threads, images,
                                     functools.partial(_winograd, xs, us, bias, m))
            direct(0), fast(0)
            plain, quick = [], []
            for _ in range(reps):
                plain.append(median_ms(direct, 1, flush))
                quick.append(median_ms(fast, 1, flush))
            a, b = statistics.median(plain), statistics.median(quick)
            cells += [f"{a:.2f}", f"{b:.2f}", f"**{b / a:.2f}**"]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _as_deploy_runs(threads: int, images: int, kernel: Callable[[Workers, int], object], i: int) -> object:
    """``kernel`` on ``threads`` threads as deploy mode runs it: pieces shared by the workers with an
    image per thread, else on PyTorch's own threads (``workers.native``)."""
    if threads == 1 or images >= threads:
        return kernel(pool(threads), i)
    return native(threads, functools.partial(kernel, SERIAL, i))


def _direct(xs: list[torch.Tensor], ws: list[torch.Tensor], bias: torch.Tensor, workers: Workers,
            i: int) -> object:
    return pieces.convolution(workers, xs[i], ws[i], bias, GEOMETRY, 1, 0.0)


def _winograd(xs: list[torch.Tensor], us: list[torch.Tensor], bias: torch.Tensor, m: int, workers: Workers,
              i: int) -> object:
    return winograd.convolution(workers, xs[i], us[i], bias, (1, 1), m, 0.0)


# (in channels, out channels, size, kernel): ResNet-50's res4 1×1 and 3×3, GoogLeNet's inception_4e/3x3
HAND_OVER = [(1024, 256, 14, 1), (256, 256, 14, 3), (160, 320, 14, 3)]


def hand_over_row(c: int, k: int, size: int, kernel: int, reps: int, flush: torch.Tensor) -> str:
    """One image's convolution on one thread, cut in two halves of its output channels that the
    caller and a woken worker share (``Workers.run``), and on PyTorch's two threads (``native``)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, c, size, size, generator=generator).contiguous(memory_format=torch.channels_last)
    w = torch.randn(k, c, kernel, kernel, generator=generator)
    halves = [w[:k // 2].contiguous(memory_format=torch.channels_last),
              w[k // 2:].contiguous(memory_format=torch.channels_last)]
    conv = functools.partial(torch.conv2d, x, padding=kernel // 2)
    whole = w.contiguous(memory_format=torch.channels_last)
    calls: dict[str, Callable[[int], object]] = {
        "one": lambda i: conv(whole),
        "halves": lambda i: pool(2).run([functools.partial(conv, half) for half in halves]),
        "native": lambda i: native(2, functools.partial(conv, whole))}
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(reps):
        for name, call in calls.items():
            times[name].append(median_ms(call, 1, flush))
    one, halves_ms, native_ms = (statistics.median(times[name]) for name in calls)
    return f"| {c}→{k} {kernel}×{kernel} at {size}×{size} | {one:.2f} | {halves_ms:.2f} | {native_ms:.2f} |"


def stage_rows(nets: list[str], reps: int) -> list[str]:
    torch.set_num_threads(2)
    rows = []
    for key in nets:
        net = models.deploy_net(models.ALL_DEPLOY_NETS[key], models.require_caffe_models(), batch=1,
                                optimize=True)
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(reps):
            for staged in (True, False):
                if not staged:
                    net.before_forward.append(lambda layer_id: None)
                net.forward()  # untimed: the other setting's pass is over
                start = time.perf_counter()
                net.forward()
                times[staged].append((time.perf_counter() - start) * 1000)
                if not staged:
                    net.before_forward.pop()
        staged_ms, ordered_ms = statistics.median(times[True]), statistics.median(times[False])
        rows.append(f"| {models.ALL_DEPLOY_NETS[key].name} | {ordered_ms:.1f} | {staged_ms:.1f} | "
                    f"**{staged_ms / ordered_ms:.2f}** |")
    return rows


# (in channels, out channels, size, kernel, stride, pad, groups): CaffeNet's conv1, conv2 and conv4,
# GoogLeNet's inception_4a/1x1 and inception_5b/1x1, ResNet-50's res4 1×1 and res5 1×1
PACKED = [(3, 96, 227, 11, 4, 0, 1), (96, 256, 27, 5, 1, 2, 2), (384, 384, 13, 3, 1, 1, 2),
          (480, 192, 14, 1, 1, 0, 1), (832, 384, 7, 1, 1, 0, 1), (1024, 256, 14, 1, 1, 0, 1),
          (512, 2048, 7, 1, 1, 0, 1)]


def packed_row(c: int, k: int, size: int, kernel: int, stride: int, pad: int, groups: int, reps: int,
               flush: torch.Tensor) -> str:
    """One image's convolution and ReLU on PyTorch's two threads: plain weights, packed weights."""
    g = Geometry((kernel, kernel), (stride, stride), (pad, pad), (1, 1))
    generator = torch.Generator().manual_seed(0)
    xs = [torch.randn(1, c, size, size, generator=generator).contiguous(memory_format=torch.channels_last)
          for _ in range(4)]
    ws = [torch.randn(k, c // groups, kernel, kernel, generator=generator).contiguous(
        memory_format=torch.channels_last) for _ in range(4)]
    packs = [onednn.pack(w, g, groups, xs[0].shape) for w in ws]
    bias = torch.randn(k, generator=generator)
    calls: dict[str, Callable[[int], object]] = {
        "plain": lambda i: native(2, lambda: pieces.convolution(SERIAL, xs[i], ws[i], bias, g, groups, 0.0)),
        "packed": lambda i: native(2, lambda: onednn.convolution(xs[i], packs[i], bias, g, groups, 0.0))}
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(reps):
        for name, call in calls.items():
            times[name].append(median_ms(call, 1, flush))
    plain, packed = (statistics.median(times[name]) for name in calls)
    shape = f"{c}→{k} {kernel}×{kernel}" + (f" /{stride}" if stride > 1 else "") + \
        (f" g{groups}" if groups > 1 else "") + f" at {size}×{size}"
    return f"| {shape} | {plain:.2f} | {packed:.2f} | **{packed / plain:.2f}** |"


def _stage_by_stage(runner: deploy.DeployRunner, plan: deploy._Plan, workers: Workers) -> float:
    """A pass as before the fifth pass: each stage's steps that run at once as a job of their own,
    then the stage's other steps."""
    together = runner._together(plan, workers)
    for stage in plan.stages:
        workers.run([functools.partial(runner._run_step, plan.steps[k], SERIAL)
                     for k in stage.steps if k in together])
        for k in stage.steps:
            if k not in together:
                runner._run_alone(plan.steps[k], workers)
        for blob_id in stage.released:
            runner.net.blob_list[blob_id].release_data()
    return 0.0


def _alternating(net: Net, ways: dict[str, Callable[[], object]], reps: int) -> dict[str, list[float]]:
    """Each way's pass times on ``net`` in ms, the ways taking turns pass by pass (``ways[name]()``
    sets one up)."""
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(reps):
        for name, set_up in ways.items():
            set_up()
            net.forward()  # untimed: the other way's pass is over
            start = time.perf_counter()
            net.forward()
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def _passes_by(by_stages: Callable[..., float], forward: Callable[..., object]) -> None:
    deploy.DeployRunner._forward_by_stages = by_stages  # type: ignore[method-assign]
    deploy.DeployRunner._forward = forward  # type: ignore[method-assign,assignment]


def pass_rows(nets: list[str], reps: int) -> list[str]:
    torch.set_num_threads(2)
    chained, lean = deploy.DeployRunner._forward_by_stages, deploy.DeployRunner._forward

    def reshaping(runner: deploy.DeployRunner, layer_id: int, layer: object, bottom: object, top: object,
                  kernel: object) -> object:
        return layer.run_forward(bottom, top, kernel)  # type: ignore[attr-defined]

    ways: dict[str, Callable[[], object]] = {
        "stage by stage": functools.partial(_passes_by, _stage_by_stage, reshaping),
        "chained": functools.partial(_passes_by, chained, reshaping),
        "chained, Reshape skipped": functools.partial(_passes_by, chained, lean)}
    rows = []
    packed_bytes, deploy.PACKED_BYTES = deploy.PACKED_BYTES, 0
    try:
        for key in nets:
            net = models.deploy_net(models.ALL_DEPLOY_NETS[key], models.require_caffe_models(), batch=1,
                                    optimize=True)
            times = _alternating(net, ways, reps)
            ms = {name: statistics.median(values) for name, values in times.items()}
            current = times["chained, Reshape skipped"]
            ratios = [statistics.median([a / b for a, b in zip(times[name], current)]) for name in ways]
            rows.append(f"| {models.ALL_DEPLOY_NETS[key].name} | " + " | ".join(
                f"{ms[name]:.1f} ({ratio:.2f})" for name, ratio in zip(ways, ratios)) + " |")
    finally:
        _passes_by(chained, lean)
        deploy.PACKED_BYTES = packed_bytes
    return rows


def _small_steps_together(runner: deploy.DeployRunner, plan: deploy._Plan, workers: Workers) -> set[int]:
    """The steps that ran at once before the sixth pass: in each stage, those that do not share
    their own work well, when there are more than one."""
    together: set[int] = set()
    for stage in plan.stages:
        small = [k for k in stage.steps if not runner._shares_well(plan.steps[k], workers)]
        if len(small) > 1:
            together.update(small)
    return together


def together_rows(nets: list[str], reps: int) -> list[str]:
    """A batch-1 pass with the small steps of each stage at once (the fifth pass) against one with
    every step of a stage wider than the threads at once and small lone steps after them joined
    (``DeployRunner._together``), alternating in one process."""
    torch.set_num_threads(2)
    current = deploy.DeployRunner._together
    ways: dict[str, Callable[[], object]] = {
        name: functools.partial(setattr, deploy.DeployRunner, "_together", together)
        for name, together in (("small steps of a stage", _small_steps_together),
                               ("wide stages, lone steps joined", current))}
    try:
        return _old_and_new_rows(nets, ways, reps, "")
    finally:
        deploy.DeployRunner._together = current  # type: ignore[method-assign]


def _old_and_new_rows(nets: list[str], ways: dict[str, Callable[[], object]], reps: int,
                      label: str) -> list[str]:
    """Per net, a batch-1 pass the old way and the new (``ways``, in that order) taking turns:
    ``| net{label} | old ms | new ms | new / old |``."""
    rows = []
    for key in nets:
        net = models.deploy_net(models.ALL_DEPLOY_NETS[key], models.require_caffe_models(), batch=1,
                                optimize=True)
        times = _alternating(net, ways, reps)
        old, new = (statistics.median(values) for values in times.values())
        ratio = statistics.median([b / a for a, b in zip(*times.values())])
        name = models.ALL_DEPLOY_NETS[key].name
        rows.append(f"| {name}{label} | {old:.1f} | {new:.1f} | **{ratio:.2f}** |")
    return rows


# a kernel: its row's name, PyTorch's way and the compiled way, each called with an input's index
Ways = tuple[str, Callable[[int], object], Callable[[int], object]]


def _lrn(channels: int, size: int) -> Ways:
    param = caffe_pb2.LayerParameter(name="norm", type="LRN")
    param.lrn_param.local_size, param.lrn_param.alpha, param.lrn_param.beta = 5, 1e-4, 0.75
    layer = LRNLayer(param)
    shape = (1, channels, size, size)
    bottoms, tops = [Blob(shape) for _ in range(4)], [Blob(shape) for _ in range(4)]
    layer.setup(bottoms[:1], tops[:1])
    layer.need_backward = False
    for i, blob in enumerate(bottoms):
        blob.adopt_data(torch.randn(shape, generator=torch.Generator().manual_seed(i))
                        .contiguous(memory_format=torch.channels_last))
    return (f"LRN, {channels} channels at {size}×{size}",
            lambda i: layer.forward([bottoms[i]], [tops[i]]),
            lambda i: compiled.lrn_across(SERIAL, bottoms[i].strided_data(), 5, 1e-4, 0.75, 1.0))


def _pool(channels: int, size: int, stride: int, pad: int) -> Ways:
    window = pooling.PoolWindow((3, 3), (stride, stride), (pad, pad))
    out_hw = window.output_shape((size, size))
    xs = [torch.randn(1, channels, size, size, generator=torch.Generator().manual_seed(i))
          .contiguous(memory_format=torch.channels_last) for i in range(4)]
    return (f"MAX pooling 3×3/{stride}, {channels} channels at {size}×{size}",
            lambda i: pooling.max_pool(xs[i], window, out_hw, with_index=False),
            lambda i: compiled.pool(SERIAL, xs[i], window, out_hw, ave=False))


def _matvec(rows: int, cols: int) -> Ways:
    generator = torch.Generator().manual_seed(0)
    ws = [torch.randn(rows, cols, generator=generator) for _ in range(2)]
    x, bias = torch.randn(1, cols, generator=generator), torch.randn(rows, generator=generator)
    y = torch.empty(1, rows)
    two = pool(2)
    return (f"inner product {cols}→{rows}, one image, 2 threads",
            lambda i: pieces.inner_product(two, x, ws[i % 2], bias, y),
            lambda i: pieces.inner_product(two, x, ws[i % 2], bias, y, matvec=compiled.matvec))


def _winograd_layer(c: int, k: int, size: int) -> Ways:
    m = winograd.tile_size((1, c, size, size), (k, c, 3, 3), (1, 1), (1, 1), (1, 1), 1) or 4
    generator = torch.Generator().manual_seed(0)
    xs = [torch.randn(1, c, size, size, generator=generator).contiguous(memory_format=torch.channels_last)
          for _ in range(4)]
    us = [winograd.kernels(torch.randn(k, c, 3, 3, generator=generator), m) for _ in range(4)]
    bias = torch.randn(k, generator=generator)
    run = functools.partial(_winograd, xs, us, bias, m, SERIAL)  # (compiled or not: compiled.load says)
    return f"Winograd F({m}×{m}, 3×3) {c}→{k} at {size}×{size}", run, run


def compiled_rows(nets: list[str], reps: int) -> list[str]:
    """Section 7: each kernel PyTorch's way and compiled, then whole passes, alternating."""
    if compiled.load() is None:
        return ["| (the compiled kernels could not be built here: no C compiler) | | | |"]
    flush = torch.empty(8 << 20)
    built = compiled.load
    torch.set_num_threads(1)
    kernels = [_lrn(192, 56), _lrn(96, 27), _pool(192, 56, 2, 0), _pool(480, 14, 1, 1),
               _winograd_layer(64, 192, 56), _winograd_layer(160, 320, 14), _matvec(4096, 9216)]
    rows = []
    for name, plain, fast in kernels:
        times: dict[str, list[float]] = {"torch": [], "compiled": []}
        for _ in range(reps):
            for way, load, call in (("torch", lambda: None, plain), ("compiled", built, fast)):
                compiled.load = load  # type: ignore[assignment]
                times[way].append(median_ms(call, 1, flush))
        compiled.load = built
        a, b = (statistics.median(values) for values in times.values())
        rows.append(f"| {name} | {a:.3f} | {b:.3f} | **{b / a:.2f}** |")
    torch.set_num_threads(2)
    ways: dict[str, Callable[[], object]] = {
        "torch": functools.partial(setattr, compiled, "load", lambda: None),
        "compiled": functools.partial(setattr, compiled, "load", built)}
    try:
        return rows + _old_and_new_rows(nets, ways, reps, ": a pass, batch 1, 2 threads")
    finally:
        compiled.load = built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--nets", default="caffenet,googlenet,resnet50")
    parser.add_argument("--sections", default="1,2,3,4,5,6,7", help="which of the sections above to run")
    args = parser.parse_args()
    nets, flush = [n for n in args.nets.split(",") if n], torch.empty(8 << 20)
    sections: dict[str, tuple[str, Callable[[], list[str]]]] = {
        "1": ("| layer | tiles | 1 thread: direct ms | Winograd ms | ratio | 2 threads: direct ms "
              "| Winograd ms | ratio |\n|---|---|---:|---:|---:|---:|---:|---:|",
              lambda: winograd_rows(args.reps)),
        "2": ("| one image's convolution | 1 thread ms | 2 halves handed over ms | 2 native threads ms |\n"
              "|---|---:|---:|---:|",
              lambda: [hand_over_row(*layer, args.reps, flush) for layer in HAND_OVER]),
        "3": ("| net, batch 1, 2 threads | step by step ms | stages ms | ratio |\n|---|---:|---:|---:|",
              lambda: stage_rows(nets, args.reps)),
        "4": ("| one image's convolution + ReLU, 2 threads | plain weights ms | packed ms | ratio |\n"
              "|---|---:|---:|---:|", lambda: [packed_row(*layer, args.reps, flush) for layer in PACKED]),
        "5": ("| net, batch 1, 2 threads: ms (over the current pass) | stage by stage | chained | "
              "chained, Reshape skipped |\n|---|---:|---:|---:|", lambda: pass_rows(nets, args.reps)),
        "6": ("| net, batch 1, 2 threads | small steps of a stage at once ms | wide stages at once, "
              "lone steps joined ms | ratio |\n|---|---:|---:|---:|", lambda: together_rows(nets, args.reps)),
        "7": ("| kernel (one thread, cold caches) or pass | PyTorch's ms | compiled ms | ratio |\n"
              "|---|---:|---:|---:|", lambda: compiled_rows(nets, args.reps)),
    }
    for number in args.sections.split(","):
        if number not in sections:
            parser.error(f"--sections: no section {number!r} (1 to {len(sections)})")
        torch.set_num_threads(1)
        header, rows = sections[number]
        print(f"{header}\n" + "\n".join(rows()) + "\n")

if __name__ == "__main__":
    main()
