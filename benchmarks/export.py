"""Export accuracy and speed: every deploy net through ONNX (onnxruntime) and to_torch against
recaffe's forward, and the 18 golden solver cases through to_torch + caffe_optimizer and through
torch.optim.SGD.

    python -m benchmarks.export [--nets alexnet,googlenet,...] [--reps 3]

Accuracy: max |ours − recaffe| / max |recaffe| over the outputs at batch 1 and 4 (weights
N(0, 1/fan_in) from torch's generator, seed 0; inputs N(0, 1)). Speed: one thread, batch 4,
median of ``--reps`` alternating runs of recaffe's forward, the exported module and onnxruntime.
Prints markdown tables (docs/export.md quotes them).
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import shutil
import statistics
import tempfile
import time

import numpy as np
import torch

import recaffe
from recaffe.export import caffe_optimizer, to_torch
from recaffe.export.graph import walk
from recaffe.export.onnx import build
from recaffe.export.torch_module import state_dict

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = next(p for p in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if p.is_dir())
MODELS = SHARED / "caffe-models"
NETS = {
    "alexnet": "models/bvlc_alexnet/deploy.prototxt",
    "caffenet": "models/bvlc_reference_caffenet/deploy.prototxt",
    "rcnn": "models/bvlc_reference_rcnn_ilsvrc13/deploy.prototxt",
    "flickr_style": "models/finetune_flickr_style/deploy.prototxt",
    "googlenet": "models/bvlc_googlenet/deploy.prototxt",
    "caffenet_full_conv": "examples/net_surgery/bvlc_caffenet_full_conv.prototxt",
    "lenet": "examples/mnist/lenet.prototxt",
    "cifar10_full": "examples/cifar10/cifar10_full.prototxt",
}


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return (time.perf_counter() - start) * 1000


def net_row(name: str, reps: int) -> str:
    import onnxruntime

    net = recaffe.Net(MODELS / NETS[name], recaffe.TEST)
    generator = torch.Generator().manual_seed(0)
    for blob in (b for blobs in net.layer_params.values() for b in blobs):
        blob.data.copy_(torch.randn(blob.shape, generator=generator) / math.sqrt(blob.count(1) or 100))
    graph = walk(net)
    (data, shape), outputs = graph.inputs[0], [blob for blob, _ in graph.outputs]
    start = time.perf_counter()
    model = build(net).SerializeToString()
    export_s = time.perf_counter() - start
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    module = to_torch(net)
    errors = {"onnx": 0.0, "torch": 0.0}
    runs: dict[str, list[float]] = {"recaffe": [], "torch": [], "onnx": []}
    for batch in (1, 4):
        x = torch.randn((batch, *shape[1:]), generator=generator)
        net.blobs[data].reshape(*x.shape)
        net.reshape()
        net.blobs[data].data.copy_(x)
        net.forward()
        with torch.no_grad():
            ours = {"onnx": dict(zip(outputs, session.run(outputs, {data: x.numpy()}))), "torch": module(x)}
        for kind, values in ours.items():
            for top in outputs:
                ref = net.blobs[top].data
                diff = (torch.as_tensor(values[top]).reshape(ref.shape) - ref).abs().max()
                err = float(diff / ref.abs().max())
                errors[kind] = max(errors[kind], err)
        if batch == 4:
            for _ in range(reps):
                runs["recaffe"].append(timed(net.forward))
                with torch.no_grad():
                    runs["torch"].append(timed(lambda x=x: module(x)))
                runs["onnx"].append(timed(lambda x=x: session.run(outputs, {data: x.numpy()})))
    ms = {k: statistics.median(v) for k, v in runs.items()}
    return (f"| {name} | {len(graph.nodes)} | {errors['onnx']:.1e} | {errors['torch']:.1e} | "
            f"{len(model) / 2**20:.0f} MiB, {export_s:.1f} s | {ms['recaffe']:.0f} | "
            f"{ms['torch'] / ms['recaffe']:.2f} | {ms['onnx'] / ms['recaffe']:.2f} |")


def solver_row(case: str) -> str:
    folder = pathlib.Path(tempfile.mkdtemp())
    shutil.copytree(ROOT / "tests/golden/solvers" / case, folder / case)
    os.chdir(folder / case)
    golden = np.load("data.npz")
    worst = {}
    for kind in ("caffe_optimizer", "torch.optim"):
        solver = recaffe.load_solver("solver.prototxt")
        module = to_torch(solver.net)
        p = solver.param
        optimizer: torch.optim.Optimizer
        scheduler: torch.optim.lr_scheduler.LRScheduler
        if kind == "caffe_optimizer":
            optimizer, scheduler = caffe_optimizer(module, p)
        else:
            optimizer = torch_optimizer(module, p)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, CaffeRate(p))
        state = dict(module.named_parameters()) | dict(module.named_buffers())
        worst[kind] = 0.0
        for i in range(1, 9):
            feed = {blob: torch.from_numpy(golden[f"{blob}/{i}"]) for blob in ("data", "label")}
            for blob, value in feed.items():
                solver.net.blobs[blob].data.copy_(value)
            solver.step(1)
            optimizer.zero_grad()
            for _ in range(p.iter_size):
                module.caffe_loss(module(**feed)).backward()  # type: ignore[operator]
            optimizer.step()
            scheduler.step()
            for key, ref in state_dict(solver.net).items():
                diff = float((state[key].detach().reshape(ref.shape) - ref).abs().max())
                err = diff / max(float(ref.abs().max()), 1.0)
                worst[kind] = max(worst[kind], err)
    os.chdir(ROOT)
    shutil.rmtree(folder)
    return f"| {case} | {p.type} | {worst['caffe_optimizer']:.1e} | {worst['torch.optim']:.1e} |"


class CaffeRate:
    """Caffe's rate of iteration ``it`` over base_lr, for LambdaLR (called once per iteration, in order)."""

    def __init__(self, p: recaffe.caffe_pb2.SolverParameter) -> None:
        self.p, self.policy, self.current_step = p, recaffe.LR_POLICIES.get(p.lr_policy), 0

    def __call__(self, it: int) -> float:
        rate, self.current_step = self.policy(self.p, it, self.current_step)
        return rate / self.p.base_lr


def torch_optimizer(module: torch.nn.Module, p: recaffe.caffe_pb2.SolverParameter) -> torch.optim.Optimizer:
    """torch.optim's counterpart of the solver with the same numbers, lr_mult and decay_mult."""
    groups = [{"params": [w], "lr": p.base_lr * module.caffe_params[n][0],  # type: ignore[index]
               "weight_decay": p.weight_decay * module.caffe_params[n][1]}  # type: ignore[index]
              for n, w in module.named_parameters()]
    optimizers = {
        "SGD": lambda: torch.optim.SGD(groups, lr=p.base_lr, momentum=p.momentum),
        "Nesterov": lambda: torch.optim.SGD(groups, lr=p.base_lr, momentum=p.momentum, nesterov=True),
        "AdaGrad": lambda: torch.optim.Adagrad(groups, lr=p.base_lr, eps=p.delta),
        "RMSProp": lambda: torch.optim.RMSprop(groups, lr=p.base_lr, alpha=p.rms_decay, eps=p.delta),
        "AdaDelta": lambda: torch.optim.Adadelta(groups, lr=p.base_lr, rho=p.momentum, eps=p.delta),
        "Adam": lambda: torch.optim.Adam(groups, lr=p.base_lr, betas=(p.momentum, p.momentum2), eps=p.delta),
    }
    return optimizers[p.type]()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", default=",".join(NETS))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-solvers", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| net | layers | ONNX max rel. error | to_torch max rel. error | ONNX file, build time | "
          "recaffe ms (batch 4) | to_torch / recaffe | onnxruntime / recaffe |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.nets.split(","):
        print(net_row(name, args.reps), flush=True)
    if not args.no_solvers:
        print("\n| solver case | type | caffe_optimizer worst error | torch.optim worst error |")
        print("| --- | --- | --- | --- |")
        for case in sorted(p.name for p in (ROOT / "tests/golden/solvers").iterdir() if p.is_dir()):
            print(solver_row(case), flush=True)


if __name__ == "__main__":
    main()
