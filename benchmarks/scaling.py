"""Data-parallel scaling of ``recaffe.distributed``: the same global batch on 1 rank and on N ranks.

    python -m benchmarks.scaling [--device cpu|cuda] [--ranks N] [--iters 20] [--warmup 3]
                                 [--reps 3] [--no-write] [--results PATH]

cpu   CIFAR10-quick (global batch 100, the published solver, synthetic batches): one process with
      N torch threads next to N processes (gloo on 127.0.0.1) of one thread and batch 100/N each.
cuda  the same on 1 GPU next to N GPUs (NCCL), when N GPUs are present.

Every run starts fresh processes (start-up is not timed); within a run each rank steps
``--warmup`` untimed iterations, meets the others, then times ``--iters`` iterations. The two
configurations alternate rep by rep, so both see the same machine load; the table gives medians.
The on-paper part counts the learnable parameters of CaffeNet and GoogLeNet (train nets) and the
bytes a ring all-reduce moves per iteration. Unless --no-write, the tables replace the section
between the ``scaling`` markers in benchmarks/RESULTS.md (after "## History", which
``benchmarks.run`` keeps).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import pathlib
import queue
import statistics
import time

import torch
import torch.multiprocessing as mp

import recaffe
from benchmarks import models, training
from recaffe.distributed.rendezvous import Rendezvous, free_port
from recaffe.distributed.sync import GradientSync
from recaffe.distributed.world import World

RESULTS = pathlib.Path(__file__).resolve().parent / "RESULTS.md"
NET = "cifar10_quick"
# name: (train net, solver, input shape per GPU at the published batch, assumed seconds per
# iteration on one current GPU when not measured). CaffeNet's own train_val is not in
# shared/caffe-models; AlexNet's has the same learnable parameters and about the same compute.
PAPER_NETS = {
    "CaffeNet": ("models/bvlc_alexnet/train_val.prototxt", "models/bvlc_alexnet/solver.prototxt",
                 (256, 3, 227, 227), 0.25),
    "GoogLeNet": ("models/bvlc_googlenet/train_val.prototxt", "models/bvlc_googlenet/solver.prototxt",
                  (32, 3, 224, 224), 0.10),
}
LINKS = {"100 Gb/s": 12.5e9, "25 Gb/s": 3.125e9}  # bytes/s between the two nodes


@dataclasses.dataclass(frozen=True)
class Config:
    ranks: int
    threads: int
    device: str
    batch: int  # global: each rank takes batch / ranks

    def label(self) -> str:
        if self.device == "cuda":
            return f"{self.ranks} GPU{'s' if self.ranks > 1 else ''} (NCCL)" if self.ranks > 1 else "1 GPU"
        processes = f"{self.ranks} process{'es' if self.ranks > 1 else ''}"
        return f"{processes} × {self.threads} thread{'s' if self.threads > 1 else ''}"


def _rank(rank: int, config: Config, port: int, iters: int, warmup: int, out: mp.Queue) -> None:
    torch.set_num_threads(config.threads)
    if config.device == "cuda":
        recaffe.device.use_device([rank])
    device = recaffe.device.default_device()
    published = models.TRAIN_NETS[NET]
    batch = config.batch // config.ranks
    spec = dataclasses.replace(published, data_shape=(batch, *published.data_shape[1:]))
    trainer = training.Trainer(models.solver_param(spec, models.require_caffe_models()))
    batches = [(d.to(device), lab.to(device)) for d, lab in models.synthetic_batches(spec, 4, seed=rank)]
    world = None
    if config.ranks > 1:
        world = World(rank, config.ranks, Rendezvous("127.0.0.1", port), device)
        sync = GradientSync(trainer.solver, world)
        trainer.solver.add_callback(sync.on_start, sync.on_gradients_ready)
        sync.broadcast()
    for i in range(warmup):
        trainer.step(*batches[i % len(batches)])
    if world is not None:
        world.all_reduce(torch.zeros(1, device=device))  # start the clocks together
    _wait(device)
    start = time.perf_counter()
    for i in range(iters):
        trainer.step(*batches[i % len(batches)])
    _wait(device)
    if rank == 0:
        out.put((time.perf_counter() - start) * 1000.0 / iters)
    if world is not None:
        world.leave()


def _wait(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(config: Config, iters: int, warmup: int) -> float:
    """ms per iteration of one fresh run of ``config``."""
    context = mp.get_context("spawn")
    out: mp.Queue = context.Queue()
    port = free_port()
    env = {"OMP_NUM_THREADS": str(config.threads)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        processes = [context.Process(target=_rank, args=(r, config, port, iters, warmup, out))
                     for r in range(config.ranks)]
        for p in processes:
            p.start()
        try:
            result = float(out.get(timeout=600))
        except queue.Empty:
            raise RuntimeError(f"{config.label()}: no result within 600 s") from None
        for p in processes:
            p.join()
        if any(p.exitcode for p in processes):
            raise RuntimeError(f"{config.label()}: a rank failed ({[p.exitcode for p in processes]})")
        return result
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def measured_table(device: str, ranks: int, batch: int, iters: int, warmup: int, reps: int) -> list[str]:
    threads = ranks if device == "cpu" else 1
    configs = list(dict.fromkeys([Config(1, threads, device, batch), Config(ranks, 1, device, batch)]))
    runs: dict[Config, list[float]] = {c: [] for c in configs}
    for _ in range(reps):
        for config in configs:
            runs[config].append(measure(config, iters, warmup))
    base = statistics.median(runs[configs[0]])
    lines = [f"CIFAR10-quick, global batch {batch} per iteration, {device}, {iters} timed iterations "
             f"after {warmup}, median of {reps} alternating runs:", "",
             "| configuration | batch per rank | ms/iter | images/s | speed-up | runs ms/iter |",
             "|---|---:|---:|---:|---:|---|"]
    for config in configs:
        ms = statistics.median(runs[config])
        lines.append(f"| {config.label()} | {batch // config.ranks} | {ms:.1f} | "
                     f"{batch * 1000.0 / ms:.0f} | {base / ms:.2f} | "
                     f"{', '.join(f'{x:.1f}' for x in runs[config])} |")
    return lines


def paper_spec(name: str, caffe_models: pathlib.Path, batch: int | None) -> models.TrainSpec:
    net, solver, shape, _ = PAPER_NETS[name]
    return models.TrainSpec(name, str(caffe_models / net), str(caffe_models / solver),
                            (batch or shape[0], *shape[1:]), 1000, (-1.0, 1.0))


def paper_seconds(spec: models.TrainSpec, device: str, iters: int = 3) -> float:
    """Measured seconds per training iteration of ``spec`` on one ``device`` (after one warm-up)."""
    recaffe.device.use_device([0] if device == "cuda" else [])
    trainer = training.Trainer(models.solver_param(spec, pathlib.Path("/")))
    target = recaffe.device.default_device()
    data, label = (t.to(target) for t in models.synthetic_batches(spec, 1)[0])
    trainer.step(data, label)
    _wait(target)
    start = time.perf_counter()
    for _ in range(iters):
        trainer.step(data, label)
    _wait(target)
    recaffe.device.use_device([])
    return (time.perf_counter() - start) / iters


def paper_table(caffe_models: pathlib.Path, measure_on: str | None, batch: int | None) -> list[str]:
    """The all-reduce volume of CaffeNet and GoogLeNet and the expected speed-up on 8 GPUs; T is
    measured on ``measure_on`` (at ``batch`` when given) or assumed."""
    source = (f"measured on one {'GPU' if measure_on == 'cuda' else 'CPU'}" if measure_on
              else "assumed, not measured")
    lines = ["On paper: 8 GPUs on 2 nodes (4 per node), ring all-reduce of the fp32 gradients once per "
             "iteration, not overlapped with backward (recaffe reduces them in one buffer when all are "
             "ready). Each GPU sends and receives 2·(N−1)/N·S bytes per iteration (S = gradient bytes, "
             "N = 8), and the ring's two hops between the nodes carry as much each over the network, "
             "which decides C, the all-reduce time; NVLink inside a node is much faster. Expected "
             f"speed-up on 8 GPUs = 8·T / (T + C), with T the time of one iteration on one GPU ({source}).",
             "", "| net | learnable params | S (fp32) | sent per GPU per iteration | T | "
             + " | ".join(f"C at {link} | speed-up at {link}" for link in LINKS) + " |",
             "|---|---:|---:|---:|---:|" + "---:|---:|" * len(LINKS)]
    for name, (_, _, shape, assumed) in PAPER_NETS.items():
        spec = paper_spec(name, caffe_models, batch)
        one = dataclasses.replace(spec, data_shape=(1, *shape[1:]))
        param = models.train_net_param(one, pathlib.Path("/"))
        for layer in param.layer:  # counting needs the shapes only: skip the random fills
            for field in ("convolution_param", "inner_product_param"):
                if layer.HasField(field):
                    getattr(layer, field).ClearField("weight_filler")
        count = sum(p.blob.count() for p in recaffe.Net(param).learnable_params)
        size = 4 * count
        moved = 2 * 7 / 8 * size
        seconds = paper_seconds(spec, measure_on) if measure_on else assumed
        cells = [f"{moved / rate * 1000:.0f} ms | {8 * seconds / (seconds + moved / rate):.1f}×"
                 for rate in LINKS.values()]
        lines.append(f"| {name} (batch {spec.data_shape[0]}/GPU) | {count / 1e6:.1f} M | "
                     f"{size / 2**20:.0f} MiB | {moved / 2**20:.0f} MiB | {seconds * 1000:.0f} ms | "
                     f"{' | '.join(cells)} |")
    return lines


def write_section(lines: list[str], results: pathlib.Path, device: str) -> None:
    """Replace (or append) this device's section between its markers in ``results``."""
    begin, end = f"<!-- scaling-{device}:begin -->", f"<!-- scaling-{device}:end -->"
    text = results.read_text() if results.exists() else "# Benchmark results\n"
    block = "\n".join([begin, *lines, end])
    if begin in text and end in text:
        head, _, rest = text.partition(begin)
        text = head + block + rest.partition(end)[2]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    results.write_text(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--batch", type=int, default=100, help="global CIFAR10-quick batch per iteration")
    parser.add_argument("--paper-batch", type=int, default=0,
                        help="batch per GPU for the measured T of the paper nets (0: published)")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--results", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.device == "cuda" and torch.cuda.device_count() < args.ranks:
        raise SystemExit(f"--device cuda --ranks {args.ranks}: PyTorch sees {torch.cuda.device_count()} GPUs")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [f"## Distributed scaling ({args.device})", "",
             f"`python -m benchmarks.scaling --device {args.device}` on {os.cpu_count()} logical CPUs"
             f"{', ' + torch.cuda.get_device_name(0) if args.device == 'cuda' else ''}, "
             f"{datetime.datetime.now().isoformat(timespec='seconds')}, load average before: {load}. "
             "The machine is shared and noisy: compare the two rows of one table, not across tables.", ""]
    lines += measured_table(args.device, args.ranks, args.batch, args.iters, args.warmup, args.reps)
    measure_on = args.device if args.device == "cuda" or args.paper_batch else None
    lines += ["", *paper_table(models.require_caffe_models(), measure_on, args.paper_batch or None)]
    print("\n".join(lines))
    if not args.no_write:
        write_section(lines, args.results, args.device)


if __name__ == "__main__":
    main()
