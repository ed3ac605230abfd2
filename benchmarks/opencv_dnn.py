"""recaffe's deploy mode next to OpenCV's dnn module (``cv2.dnn.readNetFromCaffe``) on the same
prototxt and weights.

    python -m benchmarks.opencv_dnn [--nets caffenet,googlenet,resnet50] [--batches 1,10]
                                    [--threads 2] [--reps 3] [--iters 3] [--no-memory]

Weights are seeded (``models.deploy_net``) and written to a temporary caffemodel that both read.
Time: in one process, recaffe (``optimize=True``) and OpenCV alternate, ``--iters`` forwards each
per rep after one untimed forward (OpenCV's thread pool keeps spinning for a while after a forward,
and would otherwise take the cores from the first timed forwards of recaffe; recaffe's threads
sleep at once); the figure is the median over reps of each rep's mean, and the ratio is recaffe / OpenCV
(target ≤ 0.9). Both run on ``--threads`` threads (0: each its default; recaffe's adapts to the
load, see recaffe/threads.py). Outputs are compared (max |difference| over
max |value|). Memory: each framework loads the net and runs two forwards in a fresh process;
reported is its peak RSS above the RSS after its imports. Needs the ``bench`` extra.
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

import numpy as np

from benchmarks import models
from benchmarks.memory import peak_mb, status_mb


def prototxt(key: str) -> str:
    return str(models.require_caffe_models() / models.ALL_DEPLOY_NETS[key].net)


def write_weights(key: str, path: str) -> None:
    net = models.deploy_net(models.ALL_DEPLOY_NETS[key], models.require_caffe_models())
    net.save(path)


def opencv_net(key: str, weights: str, threads: int):  # type: ignore[no-untyped-def]
    import cv2

    if threads:
        cv2.setNumThreads(threads)
    net = cv2.dnn.readNetFromCaffe(prototxt(key), weights)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    return net


def recaffe_net(key: str, weights: str, batch: int, threads: int):  # type: ignore[no-untyped-def]
    import recaffe
    from recaffe import threads as recaffe_threads

    if threads:
        recaffe_threads.set_num_threads(threads)
    net = recaffe.Net(prototxt(key), recaffe.TEST, weights_file=weights, optimize=True)
    data = net.blob_list[net.input_blob_indices[0]]
    data.reshape((batch, *data.shape[1:]))
    net.reshape()
    return net


def run_opencv(net, x: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    net.setInput(x)
    return net.forward()


def run_recaffe(net, x: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    import torch

    net.blob_list[net.input_blob_indices[0]].data.copy_(torch.from_numpy(x))
    net.forward()
    return net.blob_list[net.output_blob_indices[0]].data.numpy()


def child(framework: str, key: str, weights: str, batch: int, threads: int) -> dict[str, float]:
    """Peak RSS above the imports of loading the net and running two forwards."""
    if framework == "opencv":
        import cv2  # noqa: F401
    else:
        import recaffe  # noqa: F401
    imported = status_mb("VmRSS") or 0.0
    shape = (batch, 3, 227 if key == "caffenet" else 224, 227 if key == "caffenet" else 224)
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    if framework == "opencv":
        net = opencv_net(key, weights, threads)
        for _ in range(2):
            run_opencv(net, x)
    else:
        net = recaffe_net(key, weights, batch, threads)
        for _ in range(2):
            run_recaffe(net, x)
    return {"import_mb": imported, "peak_mb": peak_mb()}


def compare(key: str, batch: int, weights: str, args: argparse.Namespace) -> dict[str, object]:
    ours, theirs = recaffe_net(key, weights, batch, args.threads), opencv_net(key, weights, args.threads)
    x = np.random.default_rng(batch).standard_normal(
        tuple(ours.blob_list[ours.input_blob_indices[0]].shape), dtype=np.float32)
    a, b = run_recaffe(ours, x).copy(), run_opencv(theirs, x)
    error = float(np.abs(a.reshape(b.shape) - b).max() / max(np.abs(b).max(), 1e-30))
    runs: dict[str, list[float]] = {"recaffe": [], "opencv": []}
    for _ in range(args.reps):
        for name, (run, net) in (("recaffe", (run_recaffe, ours)), ("opencv", (run_opencv, theirs))):
            run(net, x)  # untimed: the other framework's threads wind down meanwhile
            start = time.perf_counter()
            for _ in range(args.iters):
                run(net, x)
            runs[name].append((time.perf_counter() - start) * 1000 / args.iters)
    ms = {name: statistics.median(values) for name, values in runs.items()}
    return {"net": models.ALL_DEPLOY_NETS[key].name, "batch": batch, "ms": ms, "runs": runs,
            "ratio": ms["recaffe"] / ms["opencv"], "error": error}


def load_times(key: str, weights: str, reps: int) -> dict[str, float]:
    """Median seconds to build the net and load its weights: recaffe (deploy mode) and OpenCV alternating."""
    import cv2

    import recaffe

    runs: dict[str, list[float]] = {"recaffe": [], "opencv": []}
    for _ in range(reps):
        start = time.perf_counter()
        recaffe.Net(prototxt(key), recaffe.TEST, weights_file=weights, optimize=True)
        runs["recaffe"].append(time.perf_counter() - start)
        start = time.perf_counter()
        cv2.dnn.readNetFromCaffe(prototxt(key), weights)
        runs["opencv"].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in runs.items()}


def memory(key: str, batch: int, weights: str, args: argparse.Namespace) -> dict[str, float]:
    peaks = {}
    for framework in ("recaffe", "opencv"):
        command = [sys.executable, "-m", "benchmarks.opencv_dnn", "--child", framework, "--nets", key,
                   "--batches", str(batch), "--weights", weights, "--threads", str(args.threads)]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        result = json.loads(out.splitlines()[-1])
        peaks[framework] = result["peak_mb"] - result["import_mb"]
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", default="caffenet,googlenet,resnet50")
    parser.add_argument("--batches", default="1,10")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--load-nets", default="caffenet,googlenet,resnet50,flickr",
                        help="nets whose build + weights loading is timed ('' for none)")
    parser.add_argument("--child", choices=("recaffe", "opencv"), help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    if args.child:
        print(json.dumps(child(args.child, args.nets, args.weights, batches[0], args.threads)))
        return
    import cv2

    print(f"OpenCV {cv2.__version__}, {args.threads} threads, median of {args.reps} reps of {args.iters} "
          f"forwards, alternating; load average {os.getloadavg()[0]:.2f}")
    print("| net | batch | recaffe deploy ms | OpenCV ms | ratio (target ≤ 0.9) | max rel. difference | "
          "peak RSS above imports recaffe / OpenCV MB |")
    print("|---|---:|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as folder:
        for key in [key for key in args.nets.split(",") if key]:
            weights = os.path.join(folder, f"{key}.caffemodel")
            write_weights(key, weights)
            for batch in batches:
                r = compare(key, batch, weights, args)
                peaks = "" if args.no_memory else "{recaffe:.0f} / {opencv:.0f}".format(
                    **memory(key, batch, weights, args))
                print(f"| {r['net']} | {batch} | {r['ms']['recaffe']:.1f} | {r['ms']['opencv']:.1f} | "
                      f"**{r['ratio']:.2f}** | {r['error']:.1e} | {peaks} |", flush=True)
        load_nets = [key for key in args.load_nets.split(",") if key]
        if load_nets:
            print("\n| net | build + load weights: recaffe deploy s | OpenCV readNetFromCaffe s | ratio |")
            print("|---|---:|---:|---:|")
        for key in load_nets:
            weights = os.path.join(folder, f"{key}.caffemodel")
            if not os.path.exists(weights):
                write_weights(key, weights)
            seconds = load_times(key, weights, args.reps)
            name = models.ALL_DEPLOY_NETS[key].name
            print(f"| {name} | {seconds['recaffe']:.2f} | {seconds['opencv']:.2f} | "
                  f"{seconds['recaffe'] / seconds['opencv']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
