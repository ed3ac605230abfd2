"""Building + loading a deploy net, and deploy mode's peak memory, next to OpenCV's dnn module.

    python -m benchmarks.deploy_load [--load-nets caffenet,googlenet,resnet50,flickr]
                                     [--memory-nets caffenet,googlenet,resnet50] [--batches 1,10]
                                     [--finetune-nets googlenet,flickr]
                                     [--reps 3] [--threads 2]

Weights are seeded (``models.deploy_net``) and written to a temporary caffemodel that both read.

* Build + load: ``recaffe.Net(prototxt, TEST, weights_file=, optimize=True)`` against
  ``cv2.dnn.readNetFromCaffe(prototxt, caffemodel)``. "cold": each in a fresh process, timed from
  after its imports (what starting a server costs); "warm": both in this process, alternating,
  after one untimed build of each. Median of ``--reps``; ratio recaffe / OpenCV (target <= 0.9).
  The untimed build fills recaffe's prototxt parse cache (``recaffe/io/parse_cache.py``), as a
  first run does; "not cached" times recaffe with ``RECAFFE_PROTOTXT_CACHE=off`` in the same
  alternation (a prototxt never read before: protobuf's text parser runs).
* Finetuning: ``recaffe.load_solver`` over the deploy net plus a loss, with ``weights`` (the fills
  the weights overwrite deferred, as ``caffe train -weights``) against building the solver and
  then copying the weights (Caffe's way: every filler runs), each in a fresh process, alternating.
* Memory: each framework in a fresh process loads the net, sets the batch and runs two forwards;
  the figure is its peak RSS (``VmHWM``) above its RSS after its imports. The two frameworks
  alternate, median of ``--reps`` (target: recaffe <= OpenCV).

Needs the ``bench`` extra (``opencv-python-headless`` 4.x).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

from benchmarks import models
from benchmarks.memory import peak_mb, status_mb
from recaffe.io import parse_cache
from recaffe.proto import caffe_pb2

FRAMEWORKS = ("recaffe", "opencv")


def prototxt(key: str) -> str:
    return str(models.require_caffe_models() / models.ALL_DEPLOY_NETS[key].net)


def write_weights(key: str, path: str) -> None:
    models.deploy_net(models.ALL_DEPLOY_NETS[key], models.require_caffe_models()).save(path)


def loader(framework: str, key: str, weights: str) -> Callable[[], object]:
    """A function building the net with its weights."""
    if framework == "opencv":
        import cv2

        return lambda: cv2.dnn.readNetFromCaffe(prototxt(key), weights)
    import recaffe

    return lambda: recaffe.Net(prototxt(key), recaffe.TEST, weights_file=weights, optimize=True)


def set_threads(framework: str, threads: int) -> None:
    if not threads:
        return
    if framework == "opencv":
        import cv2

        cv2.setNumThreads(threads)
    else:
        from recaffe import threads as recaffe_threads

        recaffe_threads.set_num_threads(threads)


def child_time(framework: str, key: str, weights: str) -> dict[str, float]:
    load = loader(framework, key, weights)  # (imports the framework)
    start = time.perf_counter()
    load()
    return {"seconds": time.perf_counter() - start}


def child_memory(framework: str, key: str, weights: str, batch: int, threads: int) -> dict[str, float]:
    load = loader(framework, key, weights)
    set_threads(framework, threads)
    imported = status_mb("VmRSS") or 0.0
    net = load()
    side = 227 if key == "caffenet" else 224
    x = np.random.default_rng(0).standard_normal((batch, 3, side, side), dtype=np.float32)
    for _ in range(2):
        if framework == "opencv":
            net.setInput(x)  # type: ignore[attr-defined]
            net.forward()  # type: ignore[attr-defined]
        else:
            import torch

            data = net.blob_list[net.input_blob_indices[0]]  # type: ignore[attr-defined]
            if data.shape[0] != batch:
                data.reshape((batch, *data.shape[1:]))
                net.reshape()  # type: ignore[attr-defined]
            data.data.copy_(torch.from_numpy(x))
            net.forward()  # type: ignore[attr-defined]
    return {"mb": peak_mb() - imported}


def finetune_solver(key: str) -> caffe_pb2.SolverParameter:
    """A solver over the deploy net with a label input and a SoftmaxWithLoss in place of its Softmax
    (the deploy net's fillers kept), as ``caffe train -solver S -weights W`` would finetune it."""
    from recaffe.io import prototxt as reading

    net = reading.read_net_param(prototxt(key))
    if net.layer[-1].type == "Softmax":
        del net.layer[-1]
    label = net.layer.add(name="label", type="Input", top=["label"])
    label.input_param.shape.add(dim=net.layer[0].input_param.shape[0].dim[:1])
    net.layer.add(name="loss", type="SoftmaxWithLoss", bottom=[net.layer[-2].top[0], "label"], top=["loss"])
    solver = caffe_pb2.SolverParameter(base_lr=0.001, random_seed=1)
    solver.net_param.CopyFrom(net)
    return solver


def child_finetune(key: str, weights: str, way: str) -> dict[str, float]:
    """Seconds to build the solver and load the weights: "deferred", with ``weights`` in the solver
    (what ``caffe train -weights`` does); "eager", Caffe's way (the net's fillers run, then the
    weights are copied over them)."""
    import recaffe

    param = finetune_solver(key)
    start = time.perf_counter()
    if way == "deferred":
        param.weights.append(weights)
        recaffe.load_solver(param)
    else:
        recaffe.load_solver(param).net.copy_trained_layers_from(weights)
    return {"seconds": time.perf_counter() - start}


def finetune_row(key: str, weights: str, reps: int) -> str:
    runs: dict[str, list[float]] = {"eager": [], "deferred": []}
    for rep in range(reps):
        for way in ("eager", "deferred") if rep % 2 == 0 else ("deferred", "eager"):
            runs[way].append(in_child("finetune", way, key, weights))
    m = {way: statistics.median(v) for way, v in runs.items()}
    return (f"| {models.ALL_DEPLOY_NETS[key].name} | {m['eager']:.3f} | {m['deferred']:.3f} | "
            f"**{m['deferred'] / m['eager']:.2f}** | " + " / ".join(
                ", ".join(f"{s:.3f}" for s in runs[way]) for way in ("eager", "deferred")) + " |")


def in_child(*arguments: str, env: dict[str, str] | None = None) -> float:
    command = [sys.executable, "-m", "benchmarks.deploy_load", "--child", *arguments]
    out = subprocess.run(command, capture_output=True, text=True, check=True,
                         env=None if env is None else {**os.environ, **env}).stdout
    result = json.loads(out.splitlines()[-1])
    return float(next(iter(result.values())))


def load_row(key: str, weights: str, reps: int) -> str:
    """Cold: recaffe (its prototxt parse cache filled by the untimed first build, as after a first
    run), recaffe parsing the text (``RECAFFE_PROTOTXT_CACHE=off``: a prototxt never read
    before) and OpenCV, alternating; warm: recaffe (cache on) and OpenCV in this process."""
    cold: dict[str, list[float]] = {f: [] for f in (*FRAMEWORKS, "uncached")}
    warm: dict[str, list[float]] = {f: [] for f in FRAMEWORKS}
    loads = {f: loader(f, key, weights) for f in FRAMEWORKS}
    for load in loads.values():
        load()  # untimed: first-use costs of this process
    for rep in range(reps):
        order = FRAMEWORKS if rep % 2 == 0 else FRAMEWORKS[::-1]
        for framework in order:
            cold[framework].append(in_child("time", framework, key, weights))
            if framework == "recaffe":
                cold["uncached"].append(in_child("time", framework, key, weights,
                                                 env={parse_cache.ENV: parse_cache.OFF}))
        for framework in order:
            start = time.perf_counter()
            loads[framework]()
            warm[framework].append(time.perf_counter() - start)
    c = {f: statistics.median(v) for f, v in cold.items()}
    w = {f: statistics.median(v) for f, v in warm.items()}
    runs = " / ".join(", ".join(f"{s:.3f}" for s in cold[f]) for f in (*FRAMEWORKS, "uncached"))
    return (f"| {models.ALL_DEPLOY_NETS[key].name} | {c['recaffe']:.3f} | {c['opencv']:.3f} | "
            f"**{c['recaffe'] / c['opencv']:.2f}** | {c['uncached']:.3f} | "
            f"**{c['uncached'] / c['opencv']:.2f}** | {w['recaffe']:.3f} | {w['opencv']:.3f} | "
            f"**{w['recaffe'] / w['opencv']:.2f}** | {runs} |")


def parse_row(key: str, reps: int) -> str:
    """The prototxt's parse: protobuf's text parser alone, recaffe's read (from the parse cache,
    filled by then; else the same text parser recording unknown fields, dialect detection), with
    the upgrades, and protobuf's binary parser on the same message."""
    from google.protobuf import text_format

    from recaffe.io import prototxt as reading
    from recaffe.proto import caffe_pb2

    path = prototxt(key)
    with open(path) as f:
        text = f.read()
    binary = reading.read_net_param(path).SerializeToString()
    ways: dict[str, Callable[[], object]] = {
        "text": lambda: text_format.Parse(text, caffe_pb2.NetParameter()),
        "read": lambda: reading.read_net_param(path),
        "binary": lambda: caffe_pb2.NetParameter.FromString(binary),
    }
    ms = {}
    for name, way in ways.items():
        runs = []
        for _ in range(reps):
            start = time.perf_counter()
            way()
            runs.append((time.perf_counter() - start) * 1000)
        ms[name] = statistics.median(runs)
    return (f"| {models.ALL_DEPLOY_NETS[key].name} | {len(text) // 1024} | {ms['text']:.1f} | "
            f"{ms['read']:.1f} | {ms['binary']:.2f} |")


def memory_row(key: str, weights: str, batch: int, args: argparse.Namespace) -> str:
    peaks: dict[str, list[float]] = {f: [] for f in FRAMEWORKS}
    for rep in range(args.reps):
        for framework in FRAMEWORKS if rep % 2 == 0 else FRAMEWORKS[::-1]:
            peaks[framework].append(in_child("memory", framework, key, weights, str(batch),
                                             str(args.threads)))
    m = {f: statistics.median(v) for f, v in peaks.items()}
    runs = " / ".join(", ".join(f"{s:.0f}" for s in peaks[f]) for f in FRAMEWORKS)
    return (f"| {models.ALL_DEPLOY_NETS[key].name} | {batch} | {m['recaffe']:.0f} | {m['opencv']:.0f} | "
            f"**{m['recaffe'] / m['opencv']:.2f}** | {runs} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--load-nets", default="caffenet,googlenet,resnet50,flickr")
    parser.add_argument("--memory-nets", default="caffenet,googlenet,resnet50")
    parser.add_argument("--finetune-nets", default="googlenet,flickr",
                        help="nets whose solver is built with weights, deferred fills against eager")
    parser.add_argument("--batches", default="1,10")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="threads of each framework's forwards")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, framework, key, weights, *rest = args.child
        if kind == "finetune":  # (framework: the way, "eager" or "deferred")
            result = child_finetune(key, weights, framework)
        else:
            result = (child_time(framework, key, weights) if kind == "time" else
                      child_memory(framework, key, weights, int(rest[0]), int(rest[1])))
        print(json.dumps(result))
        return
    import cv2

    load_nets = [k for k in args.load_nets.split(",") if k]
    memory_nets = [k for k in args.memory_nets.split(",") if k]
    finetune_nets = [k for k in args.finetune_nets.split(",") if k]
    print(f"OpenCV {cv2.__version__}; median of {args.reps} reps, recaffe and OpenCV alternating; "
          f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as folder:
        weights = {}
        for key in dict.fromkeys(load_nets + memory_nets + finetune_nets):
            weights[key] = os.path.join(folder, f"{key}.caffemodel")
            write_weights(key, weights[key])
        if load_nets:
            print("\n| net | cold recaffe s | cold OpenCV s | ratio (target ≤ 0.9) | cold recaffe, "
                  "prototxt not cached s | ratio | warm recaffe s | warm OpenCV s | ratio | "
                  "cold runs recaffe / OpenCV / not cached s |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for key in load_nets:
            print(load_row(key, weights[key], args.reps), flush=True)
        if load_nets:
            print("\n| net | prototxt KB | protobuf text_format.Parse ms | recaffe read_net_param ms | "
                  "protobuf binary parse of the same message ms |\n|---|---:|---:|---:|---:|")
        for key in load_nets:
            print(parse_row(key, max(args.reps, 5)), flush=True)
        if finetune_nets:
            print("\n| net | solver built, then weights copied (fillers run) s | solver with weights "
                  "(fills deferred) s | ratio | runs eager / deferred s |\n|---|---:|---:|---:|---|")
        for key in finetune_nets:
            print(finetune_row(key, weights[key], args.reps), flush=True)
        if memory_nets:
            print("\n| net | batch | recaffe deploy MB | OpenCV MB | ratio (target ≤ 1) | "
                  "runs recaffe / OpenCV MB |\n|---|---:|---:|---:|---:|---|")
        for key in memory_nets:
            for batch in (int(b) for b in args.batches.split(",")):
                print(memory_row(key, weights[key], batch, args), flush=True)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
