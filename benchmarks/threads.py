"""Forward time under thread settings, on an idle machine and next to busy processes.

    python -m benchmarks.threads [--nets caffenet,googlenet] [--batch 1] [--busy 2] [--reps 3]

Three settings run side by side, each in its own process: ``1 thread`` (deploy mode,
RECAFFE_NUM_THREADS=1), ``default`` (deploy mode with recaffe's default settings: one thread per
core sharing each step's pieces, see recaffe/workers.py) and ``OpenMP`` (the same net in plain
mode, ``optimize=False``: PyTorch's own OpenMP threads, one per core, as deploy mode ran before).
For each rep the parent asks every process for one timing (median of ``--iters`` forwards) with no
load, then again while ``--busy`` processes spin on the CPU (the built-in load generator), so all
settings see the same machine. Reported: the median over reps, and each setting's time over the
1-thread time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

# name: (environment, deploy mode)
SETTINGS: dict[str, tuple[dict[str, str], bool]] = {
    "1 thread": ({"RECAFFE_NUM_THREADS": "1"}, True),
    "default": ({}, True),
    "OpenMP": ({}, False),
}


def child(net: str, batch: int, iters: int, optimize: bool) -> None:
    """Build the net, then answer each line on stdin with the median forward ms as JSON."""
    from benchmarks import models

    deploy = models.deploy_net(models.ALL_DEPLOY_NETS[net], models.require_caffe_models(), batch=batch,
                               optimize=optimize)
    deploy.forward()
    print(json.dumps({"ready": True}), flush=True)
    for _ in sys.stdin:
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            deploy.forward()
            times.append((time.perf_counter() - start) * 1000)
        print(json.dumps({"ms": statistics.median(times)}), flush=True)


@contextlib.contextmanager
def busy(count: int) -> Iterator[None]:
    """``count`` processes spinning on the CPU (a CPU-bound neighbour each)."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.5)
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def measure(net: str, args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    processes = {}
    for name, (env, optimize) in SETTINGS.items():
        environment = {k: v for k, v in os.environ.items()
                       if k not in ("OMP_NUM_THREADS", "RECAFFE_NUM_THREADS")}
        processes[name] = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.threads", "--child", net, "--batch", str(args.batch),
             "--iters", str(args.iters), *([] if optimize else ["--plain"])], env={**environment, **env},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    for process in processes.values():
        json.loads(process.stdout.readline())  # type: ignore[union-attr]
    results: dict[str, dict[str, list[float]]] = {"idle": {}, "busy": {}}
    try:
        for _ in range(args.reps):
            for condition in ("idle", "busy"):
                with busy(args.busy if condition == "busy" else 0):
                    for name, process in processes.items():
                        process.stdin.write("run\n")  # type: ignore[union-attr]
                        process.stdin.flush()  # type: ignore[union-attr]
                        ms = json.loads(process.stdout.readline())["ms"]  # type: ignore[union-attr]
                        results[condition].setdefault(name, []).append(ms)
    finally:
        for process in processes.values():
            process.kill()
            process.wait()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", default="caffenet,googlenet")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--busy", type=int, default=2, help="CPU-bound processes in the loaded rounds")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.batch, args.iters, not args.plain)
        return
    print(f"batch {args.batch}, {args.busy} busy processes in the loaded rounds, median of {args.reps} "
          f"reps of {args.iters} forwards; load average before: {os.getloadavg()[0]:.2f}")
    print("| net | condition | " + " | ".join(f"{n} ms" for n in SETTINGS) + " | default / 1 thread | "
          "OpenMP / 1 thread |")
    print("|---|---|" + "---:|" * (len(SETTINGS) + 2))
    for net in args.nets.split(","):
        results = measure(net, args)
        for condition, runs in results.items():
            ms = {name: statistics.median(values) for name, values in runs.items()}
            print(f"| {net} | {condition} | " + " | ".join(f"{ms[n]:.1f}" for n in SETTINGS) +
                  f" | {ms['default'] / ms['1 thread']:.2f} | {ms['OpenMP'] / ms['1 thread']:.2f} |")


if __name__ == "__main__":
    main()
