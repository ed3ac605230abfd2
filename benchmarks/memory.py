"""Peak resident memory of one configuration, measured in a fresh process.

    python -m benchmarks.memory {train,inference} NET {recaffe,pytorch} [--iters N] [--threads T]

prints one JSON line: ``import_mb`` (resident after the imports), ``peak_mb`` (the process's
high-water mark, ``VmHWM``, else ``ru_maxrss``), and for recaffe ``diff_blobs`` (how many blobs
hold diff storage at the end; an inference net must hold none). The PyTorch child imports only
torch and ``benchmarks.reference``.
"""

from __future__ import annotations

import argparse
import json
import resource


def status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_mb(hwm_valid: bool = True) -> float:
    """The process's high-water mark: ``VmHWM`` (unless ``hwm_valid`` is False), else ``ru_maxrss``."""
    hwm = status_mb("VmHWM") if hwm_valid else None
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_pytorch(mode: str, net: str, iters: int) -> dict[str, float]:
    """Training only: the reference has no deploy nets."""
    import torch

    from benchmarks import reference

    imported = status_mb("VmRSS") or 0.0
    trainer = reference.Trainer(net)
    shape = {"lenet": (64, 1, 28, 28), "cifar10_quick": (100, 3, 32, 32)}[net]
    data, label = torch.rand(shape), torch.randint(10, shape[:1])
    for _ in range(iters):
        trainer.step(data, label)
    return {"import_mb": imported, "peak_mb": peak_mb()}


def run_recaffe(mode: str, net: str, iters: int) -> dict[str, float]:
    from benchmarks import models, training

    imported = status_mb("VmRSS") or 0.0
    root = models.require_caffe_models()
    if mode == "train":
        spec = models.TRAIN_NETS[net]
        trainer = training.Trainer(models.solver_param(spec, root))
        data, label = models.synthetic_batches(spec, 1)[0]
        for _ in range(iters):
            trainer.step(data, label)
        blobs = trainer.net.blob_list
    else:
        deploy = models.deploy_net(models.DEPLOY_NETS[net], root)
        for _ in range(iters):
            deploy.forward()
        blobs = deploy.blob_list + deploy.params
    return {"import_mb": imported, "peak_mb": peak_mb(), "diff_blobs": sum(b.has_diff for b in blobs)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("train", "inference"))
    parser.add_argument("net")
    parser.add_argument("framework", choices=("recaffe", "pytorch"))
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    run = run_pytorch if args.framework == "pytorch" else run_recaffe
    print(json.dumps(run(args.mode, args.net, args.iters)))


if __name__ == "__main__":
    main()
