"""recaffe's benchmark suite: training next to PyTorch eager, inference, peak memory, per-layer times.

    python -m benchmarks.run [--only train,inference,memory,layers] [--nets lenet,caffenet,...]
                             [--reps 3] [--iters N] [--warmup N] [--threads T] [--no-write]

train      LeNet (batch 64) and CIFAR10-quick (batch 100) SGD iterations, recaffe's solver and the
           same net in PyTorch eager (benchmarks/reference.py) in one process on the same synthetic
           batches from the same initial weights; ms/iter is the median of ``--reps`` runs of
           ``--iters`` iterations each (after ``--warmup`` untimed ones), and within a run the two
           alternate in ``--chunks`` chunks so that both see the same machine load.
inference  CaffeNet and GoogLeNet deploy forward passes (batch 10): median ms and images/s,
           next to the real Caffe's figures from the issue.
memory     peak resident memory of each configuration in a fresh process (benchmarks/memory.py).
layers     ``recaffe time``'s per-layer tables for the four nets.
nanguard   the cost of the NaN guard (on by default in ``caffe train``): LeNet SGD iterations with
           the guard on and off, alternating in ``--chunks`` chunks on one solver; the overhead is
           the median over ``--reps`` runs of (time on / time off − 1).

The nets are the published prototxts in ../shared/caffe-models (skipped with a message when
absent). Results print as tables and, unless --no-write, replace the top of
benchmarks/RESULTS.md (everything from the "## History" heading on is kept).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

import recaffe
from benchmarks import layer_times, models, reference, training
from recaffe.debug import nan_guard

RESULTS = pathlib.Path(__file__).resolve().parent / "RESULTS.md"
HISTORY = "## History"
# The issue's figures on this machine: (low, high) ms/iter for training, ms per batch-10 forward
CAFFE_TRAIN_MS = {"lenet": (25.0, 28.0), "cifar10_quick": (187.0, 212.0)}
ISSUE_PYTORCH_MS = {"lenet": (22.0, 26.0), "cifar10_quick": (87.0, 120.0)}
CAFFE_FORWARD_MS = {"caffenet": 277.0, "googlenet": 775.0}
TRAIN_TARGET, INFERENCE_TARGET = 0.8, 2.0
DEFAULT_ITERS = {"lenet": (10, 100), "cifar10_quick": (5, 25), "caffenet": (2, 10), "googlenet": (2, 5)}


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine() -> dict[str, str]:
    model = platform.processor() or platform.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
        model = fields.get("Model name", model).strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return {
        "cpu": f"{model}, {os.cpu_count()} logical CPUs",
        "threads": str(torch.get_num_threads()),
        "versions": f"recaffe {recaffe.__version__}, torch {torch.__version__}, numpy {np.__version__}, "
                    f"Python {platform.python_version()}",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def iteration_counts(key: str, args: argparse.Namespace) -> tuple[int, int]:
    warmup, iters = DEFAULT_ITERS[key]
    return (args.warmup if args.warmup >= 0 else warmup), (args.iters or iters)


def timed_ms(step: Callable[[int], object], iters: int) -> float:
    """Mean milliseconds of ``step(i)`` over ``iters`` calls."""
    start = time.perf_counter()
    for i in range(iters):
        step(i)
    return (time.perf_counter() - start) * 1000.0 / iters


# ==================================================================== training
def check_reference(key: str, trainer: training.Trainer) -> None:
    """The PyTorch reference's hard-coded settings must be the published solver's and net's."""
    p, ref = trainer.solver.param, reference.SETTINGS[key]
    ours = [p.base_lr, p.momentum, p.weight_decay] + ([p.gamma, p.power] if p.lr_policy == "inv" else [])
    theirs = [ref.base_lr, ref.momentum, ref.weight_decay] + ([ref.gamma, ref.power] if ref.lr_policy == "inv"
                                                              else [])
    mults = [(lp.lr_mult, lp.decay_mult) for lp in trainer.net.learnable_params]
    if (p.lr_policy != ref.lr_policy or list(np.float32(theirs)) != list(np.float32(ours))
            or mults != reference.multipliers(reference.MODELS[key]())):
        raise RuntimeError(f"{key}: the PyTorch reference's settings {ref} or multipliers do not match "
                           f"the published solver {p} / {mults}")


def bench_training(key: str, args: argparse.Namespace) -> dict:
    spec = models.TRAIN_NETS[key]
    ours = training.Trainer(models.solver_param(spec, args.models))
    check_reference(key, ours)
    theirs = reference.Trainer(key, [p.blob.data for p in ours.net.learnable_params])
    batches = models.synthetic_batches(spec, 4)
    warmup, iters = iteration_counts(key, args)
    runs: dict[str, list[float]] = {"recaffe": [], "pytorch": []}
    losses: dict[str, float] = {}
    trainers = {"recaffe": ours, "pytorch": theirs}
    for trainer in trainers.values():
        for i in range(warmup):
            trainer.step(*batches[i % len(batches)])
    chunk = max(1, iters // args.chunks)
    for _ in range(args.reps):
        total = {name: 0.0 for name in trainers}
        for _ in range(max(1, iters // chunk)):  # alternate in chunks, so both see the same load
            for name, trainer in trainers.items():
                total[name] += chunk * timed_ms(
                    lambda i, t=trainer, n=name: losses.__setitem__(n, t.step(*batches[i % len(batches)])),
                    chunk)
        for name in trainers:
            runs[name].append(total[name] / (max(1, iters // chunk) * chunk))
    ms = {name: statistics.median(values) for name, values in runs.items()}
    return {"net": spec.name, "key": key, "batch": spec.data_shape[0], "runs": runs, "ms": ms,
            "ratio": ms["recaffe"] / ms["pytorch"], "loss": losses, "iters": iters, "warmup": warmup}


def training_table(results: list[dict]) -> str:
    lines = ["| net | batch | recaffe ms/iter | PyTorch eager ms/iter | ratio (target ≤ 0.8) | "
             "runs recaffe / PyTorch | final loss recaffe / PyTorch | issue: Caffe, PyTorch |",
             "|---|---:|---:|---:|---:|---|---|---|"]
    for r in results:
        runs = " / ".join(", ".join(f"{v:.1f}" for v in r["runs"][n]) for n in ("recaffe", "pytorch"))
        caffe, torch_ms = CAFFE_TRAIN_MS[r["key"]], ISSUE_PYTORCH_MS[r["key"]]
        lines.append(
            f"| {r['net']} | {r['batch']} | {r['ms']['recaffe']:.1f} | {r['ms']['pytorch']:.1f} | "
            f"**{r['ratio']:.2f}** {'✓' if r['ratio'] <= TRAIN_TARGET else '✗'} | {runs} | "
            f"{r['loss']['recaffe']:.4f} / {r['loss']['pytorch']:.4f} | "
            f"{caffe[0]:.0f}–{caffe[1]:.0f}, {torch_ms[0]:.0f}–{torch_ms[1]:.0f} |")
    return "\n".join(lines)


# ==================================================================== NaN guard
def bench_nan_guard(key: str, args: argparse.Namespace) -> dict:
    spec = models.TRAIN_NETS[key]
    trainer = training.Trainer(models.solver_param(spec, args.models))
    batches = models.synthetic_batches(spec, 4)
    warmup, iters = iteration_counts(key, args)
    for i in range(warmup):
        trainer.step(*batches[i % len(batches)])
    chunk = max(1, iters // args.chunks)
    ratios: list[float] = []
    ms: dict[str, list[float]] = {"off": [], "on": []}
    try:
        for _ in range(args.reps):
            total = {"off": 0.0, "on": 0.0}
            for _ in range(max(1, iters // chunk)):
                for mode in ("off", "on"):
                    nan_guard.set_enabled(mode == "on")
                    total[mode] += timed_ms(lambda i: trainer.step(*batches[i % len(batches)]), chunk)
            for mode in total:
                ms[mode].append(total[mode] / max(1, iters // chunk))
            ratios.append(total["on"] / total["off"])
    finally:
        nan_guard.set_enabled(False)
    return {"net": spec.name, "batch": spec.data_shape[0], "ms": ms, "ratios": ratios,
            "overhead": statistics.median(ratios) - 1.0, "iters": iters}


def nan_guard_table(results: list[dict]) -> str:
    lines = ["| net | batch | guard off ms/iter | guard on ms/iter | overhead (target ≤ 3 %) | runs on/off |",
             "|---|---:|---:|---:|---:|---|"]
    for r in results:
        off, on = statistics.median(r["ms"]["off"]), statistics.median(r["ms"]["on"])
        ok = "✓" if r["overhead"] <= 0.03 else "✗"
        runs = ", ".join(f"{v:.3f}" for v in r["ratios"])
        lines.append(f"| {r['net']} | {r['batch']} | {off:.2f} | {on:.2f} | "
                     f"**{100 * r['overhead']:+.1f} %** {ok} | {runs} |")
    return "\n".join(lines)


# =================================================================== inference
def bench_inference(key: str, args: argparse.Namespace) -> dict:
    spec = models.DEPLOY_NETS[key]
    net = models.deploy_net(spec, args.models)
    batch = net.blob_list[net.input_blob_indices[0]].shape[0]
    warmup, iters = iteration_counts(key, args)
    for _ in range(warmup):
        net.forward()
    runs = [timed_ms(lambda i: net.forward(), iters) for _ in range(args.reps)]
    ms = statistics.median(runs)
    diffs = sum(b.has_diff for b in net.blob_list + net.params)
    return {"net": spec.name, "key": key, "batch": batch, "runs": runs, "ms": ms,
            "images_per_s": batch * 1000.0 / ms, "caffe_images_per_s": batch * 1000.0 / CAFFE_FORWARD_MS[key],
            "diff_blobs": diffs}


def inference_table(results: list[dict]) -> str:
    lines = ["| net | batch | ms/forward | images/s | real Caffe images/s | × Caffe (target ≥ 2) | runs ms | "
             "blobs with diffs |", "|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in results:
        times = r["images_per_s"] / r["caffe_images_per_s"]
        lines.append(
            f"| {r['net']} | {r['batch']} | {r['ms']:.1f} | {r['images_per_s']:.1f} | "
            f"{r['caffe_images_per_s']:.1f} | **{times:.2f}** {'✓' if times >= INFERENCE_TARGET else '✗'} | "
            f"{', '.join(f'{v:.1f}' for v in r['runs'])} | {r['diff_blobs']} |")
    return "\n".join(lines)


# ====================================================================== memory
def bench_memory(nets: list[str], args: argparse.Namespace) -> list[dict]:
    configs = [("train", n, f) for n in nets if n in models.TRAIN_NETS for f in ("recaffe", "pytorch")]
    configs += [("inference", n, "recaffe") for n in nets if n in models.DEPLOY_NETS]
    results = []
    for mode, net, framework in configs:
        command = [sys.executable, "-m", "benchmarks.memory", mode, net, framework,
                   "--threads", str(torch.get_num_threads())]
        out = subprocess.run(command, capture_output=True, text=True, check=True,
                             cwd=RESULTS.parent.parent).stdout
        results.append({"mode": mode, "net": net, "framework": framework, **json.loads(out.splitlines()[-1])})
    return results


def memory_table(results: list[dict]) -> str:
    lines = ["| mode | net | framework | RSS after imports MB | peak RSS MB | peak − imports MB | "
             "blobs with diffs |", "|---|---|---|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['mode']} | {r['net']} | {r['framework']} | {r['import_mb']:.0f} | "
                     f"{r['peak_mb']:.0f} | {r['peak_mb'] - r['import_mb']:.0f} | "
                     f"{r.get('diff_blobs', '–')} |")
    return "\n".join(lines)


# ====================================================================== layers
def bench_layers(key: str, args: argparse.Namespace) -> str:
    _, iters = iteration_counts(key, args)
    if key in models.TRAIN_NETS:
        spec = models.TRAIN_NETS[key]
        trainer = training.Trainer(models.solver_param(spec, args.models))
        data, label = models.synthetic_batches(spec, 1)[0]
        trainer.data.data.copy_(data)
        trainer.label.data.copy_(label)
        title = f"{spec.name} (TRAIN, batch {data.shape[0]})"
        return layer_times.layer_table(trainer.net, iters, True, title)
    spec = models.DEPLOY_NETS[key]
    net = models.deploy_net(spec, args.models)
    batch = net.blob_list[net.input_blob_indices[0]].shape[0]
    return layer_times.layer_table(net, iters, False, f"{spec.name} (deploy, batch {batch})")


# ======================================================================== main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="train,inference,memory,layers,nanguard",
                        help="comma-separated benchmarks: train, inference, memory, layers, nanguard")
    parser.add_argument("--nets", default=",".join([*models.TRAIN_NETS, *models.DEPLOY_NETS]))
    parser.add_argument("--reps", type=int, default=3, help="timed runs per configuration (median)")
    parser.add_argument("--iters", type=int, default=0, help="iterations per timed run (0: per-net default)")
    parser.add_argument("--warmup", type=int, default=-1, help="untimed iterations first (-1: default)")
    parser.add_argument("--chunks", type=int, default=5,
                        help="training: each timed run alternates recaffe and PyTorch this many times")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--no-write", action="store_true", help=f"do not update {RESULTS.name}")
    return parser.parse_args(argv)


def write_results(sections: list[str], info: dict[str, str]) -> None:
    history = ""
    if RESULTS.exists():
        text = RESULTS.read_text()
        if HISTORY in text:
            history = text[text.index(HISTORY):]
    header = ["# Benchmark results", "",
              "Written by `python -m benchmarks.run` (`make bench`); see that module's docstring for "
              "what each figure means.", "",
              f"- Machine: {info['cpu']}; torch threads: {info['threads']}",
              f"- Versions: {info['versions']}",
              f"- Date: {info['date']}; load average (1, 5, 15 min) before: {info['load_before']}, "
              f"after: {info['load_after']}", ""]
    RESULTS.write_text("\n".join(header + sections) + "\n" + (("\n" + history) if history else ""))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.models = models.caffe_models()
    if args.models is None:
        print("benchmarks: ../shared/caffe-models (the published Caffe prototxts) is not present; skipped")
        return 0
    only = set(args.only.split(","))
    nets = [n.strip() for n in args.nets.split(",") if n.strip()]
    info = machine()
    info["load_before"] = load_average()
    print(f"{info['cpu']}; {info['threads']} threads; {info['versions']}; load {info['load_before']}")
    sections: list[str] = []
    train_nets = [n for n in nets if n in models.TRAIN_NETS]
    deploy_nets = [n for n in nets if n in models.DEPLOY_NETS]
    if "train" in only and train_nets:
        table = training_table([bench_training(n, args) for n in train_nets])
        sections += ["## Training: recaffe next to PyTorch eager", "", table, ""]
        print(table)
    if "inference" in only and deploy_nets:
        table = inference_table([bench_inference(n, args) for n in deploy_nets])
        sections += ["## Inference: deploy forward", "", table, ""]
        print(table)
    if "memory" in only:
        table = memory_table(bench_memory(nets, args))
        sections += ["## Peak memory (each in a fresh process)", "", table, ""]
        print(table)
    if "nanguard" in only and "lenet" in train_nets:
        table = nan_guard_table([bench_nan_guard("lenet", args)])
        sections += ["## NaN guard overhead (LeNet training, guard on vs off alternating)", "", table, ""]
        print(table)
    if "layers" in only:
        tables = [bench_layers(n, args) for n in nets]
        sections += ["## Per-layer times (`recaffe time`)", ""] + [t + "\n" for t in tables]
        print("\n\n".join(tables))
    info["load_after"] = load_average()
    print(f"load average after: {info['load_after']}")
    if not args.no_write:
        write_results(sections, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
