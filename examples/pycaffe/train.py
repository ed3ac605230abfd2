"""Multi-process training from pycaffe, the pattern of BVLC's ``python/train.py``.

    python examples/pycaffe/train.py --solver S [--snapshot STATE] --gpus 0 1

One process per listed device (``multiprocessing``); the parent makes a rendezvous id with
``caffe.NCCL.new_uid()`` and every process sets its solver count and rank, builds its solver,
joins the run with ``caffe.NCCL(solver, uid)``, takes rank 0's weights (``bcast``) and trains with
its gradients all-reduced (``solver.add_callback(nccl)``). On a machine without CUDA each process
trains on the CPU (gloo), so the same script runs anywhere.
"""

import argparse
from multiprocessing import Process

import caffe


def solve(proto: str, snapshot: str, gpus: list[int], uid: bytes, rank: int) -> None:
    try:
        caffe.set_mode_gpu()
        caffe.set_device(gpus[rank])
    except RuntimeError:  # no CUDA device: train on the CPU
        caffe.set_mode_cpu()
    caffe.set_solver_count(len(gpus))
    caffe.set_solver_rank(rank)
    caffe.set_multiprocess(True)

    solver = caffe.SGDSolver(proto)
    if snapshot:
        solver.restore(snapshot)

    nccl = caffe.NCCL(solver, uid)
    nccl.bcast()
    solver.add_callback(nccl)
    if solver.param.layer_wise_reduce:
        solver.net.after_backward(nccl)
    solver.step(solver.param.max_iter)


def main() -> None:
    parser = argparse.ArgumentParser(description="Train a solver on several devices (one process each)")
    parser.add_argument("--solver", required=True, help="the solver prototxt")
    parser.add_argument("--snapshot", default="", help="a solverstate to resume from")
    parser.add_argument("--gpus", type=int, nargs="+", default=[0], help="device ids, one process each")
    args = parser.parse_args()

    uid = caffe.NCCL.new_uid()
    caffe.init_log(0, True)
    caffe.log(f"Using devices {args.gpus}")
    procs = []
    for rank in range(len(args.gpus)):
        p = Process(target=solve, args=(args.solver, args.snapshot, args.gpus, uid, rank))
        p.daemon = True
        p.start()
        procs.append(p)
    for p in procs:
        p.join()
    failed = [rank for rank, p in enumerate(procs) if p.exitcode]
    if failed:
        raise SystemExit(f"ranks {failed} failed")


if __name__ == "__main__":
    main()
