"""Time and memory of writing and reading a large ``.caffemodel`` (one InnerProduct layer, or CaffeNet).

    python -m benchmarks.caffemodel_io [--outputs 6000] [--inputs 10000] [--net caffenet] [--dir /tmp]

"read-v1" loads the same weights from a V1-format file (``layers`` entries), which is read
without an upgrade pass. Each phase runs in a fresh subprocess so its peak memory is its own.

The other ways in, each measured around its weights load (``Net.copy_trained_layers_from``, or
the whole ``Net(...)`` call): "net" builds the deploy net with ``Net(..., weights_file=)``;
"copy_from" is pycaffe's ``caffe.Net(...).copy_from``; "test" and "train" are ``caffe test
-weights`` and ``caffe train -weights`` (a solver over the deploy net plus a label and a loss,
``max_iter: 0``), run in process by recaffe's CLI.
Peak memory is the process's resident high-water mark (``VmHWM``, reset through
``/proc/self/clear_refs`` where Linux allows it, else ``ru_maxrss``) minus the resident size
just before the operation; it is printed next to the size of the weights, so "1.0x" means one
extra copy of the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
from google.protobuf import text_format

import recaffe
from benchmarks import models
from benchmarks.memory import peak_mb, status_mb
from recaffe.io import prototxt
from recaffe.proto import caffe_pb2

MB = 1 << 20
ENTRIES = ("net", "copy_from", "test", "train")


def net_param(outputs: int, inputs: int) -> caffe_pb2.NetParameter:
    return text_format.Parse(
        f"""name: "big"
        layer {{ name: "in" type: "Input" top: "x" input_param {{ shape {{ dim: 1 dim: {inputs} }} }} }}
        layer {{ name: "ip" type: "InnerProduct" bottom: "x" top: "y"
                 inner_product_param {{ num_output: {outputs} bias_term: false
                                        weight_filler {{ type: "constant" }} }} }}""",
        caffe_pb2.NetParameter(),
    )


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure(operation) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(seconds, peak extra MB) of ``operation()``."""
    reset = reset_peak()
    before = status_mb("VmRSS") or 0.0
    start = time.perf_counter()
    operation()
    seconds = time.perf_counter() - start
    return seconds, peak_mb(hwm_valid=reset) - before


def build(args: argparse.Namespace) -> recaffe.Net:
    if args.net == "caffenet":
        return recaffe.Net(str(models.require_caffe_models() / models.DEPLOY_NETS["caffenet"].net),
                           recaffe.TEST)
    return recaffe.Net(net_param(args.outputs, args.inputs), recaffe.TEST)


def fill(net: recaffe.Net) -> None:
    generator = torch.Generator().manual_seed(0)
    for blob in net.params:
        blob.data.copy_(torch.randn(blob.shape, generator=generator))


def write_v1(path: str) -> None:
    """Rewrite the caffemodel at ``path`` in the V1 format (``layers`` with enum types) next to it."""
    param = prototxt.read_binary(path, caffe_pb2.NetParameter())
    v1 = caffe_pb2.NetParameter(name=param.name)
    for layer in param.layer:
        v1.layers.add(name=layer.name, type=caffe_pb2.V1LayerParameter.NONE).blobs.extend(layer.blobs)
    with open(path + ".v1", "wb") as f:
        f.write(v1.SerializeToString())


def deploy_prototxt(args: argparse.Namespace, folder: str) -> str:
    """The net as a prototxt file (CaffeNet's own, or the one-layer net written into ``folder``)."""
    if args.net == "caffenet":
        return str(models.require_caffe_models() / models.DEPLOY_NETS["caffenet"].net)
    path = os.path.join(folder, "big.prototxt")
    with open(path, "w") as f:
        f.write(text_format.MessageToString(net_param(args.outputs, args.inputs)))
    return path


def write_solver(args: argparse.Namespace, folder: str) -> str:
    """A solver over the deploy net with a label input and a SoftmaxWithLoss, training 0 iterations."""
    net = prototxt.read_net_param(deploy_prototxt(args, folder))
    if net.layer[-1].type == "Softmax":
        del net.layer[-1]
    label = net.layer.add(name="label", type="Input", top=["label"])
    label.input_param.shape.add(dim=net.layer[0].input_param.shape[0].dim[:1])
    net.layer.add(name="loss", type="SoftmaxWithLoss", bottom=[net.layer[-2].top[0], "label"], top=["loss"])
    solver = caffe_pb2.SolverParameter(max_iter=0, base_lr=0.01, snapshot_after_train=False,
                                       solver_mode=caffe_pb2.SolverParameter.CPU)
    solver.net_param.CopyFrom(net)
    path = os.path.join(folder, "solver.prototxt")
    with open(path, "w") as f:
        f.write(text_format.MessageToString(solver))
    return path


def around_loads(operation) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Run ``operation()``, measuring each ``copy_trained_layers_from`` inside it: the largest
    (seconds, peak extra MB), and the params' size."""
    original = recaffe.Net.copy_trained_layers_from
    seen: list[tuple[float, float]] = []
    sizes: list[float] = []

    def measured(net: recaffe.Net, source):  # type: ignore[no-untyped-def]
        copied: set[str] = set()

        def load() -> None:
            copied.update(original(net, source))

        seen.append(measure(load))
        sizes.append(sum(blob.count() for blob in net.params) * 4 / MB)
        return copied

    recaffe.Net.copy_trained_layers_from = measured  # type: ignore[method-assign,assignment]
    try:
        operation()
    finally:
        recaffe.Net.copy_trained_layers_from = original  # type: ignore[method-assign]
    seconds, extra = max(seen, key=lambda pair: pair[1])
    return {"seconds": seconds, "extra_mb": extra, "weights_mb": max(sizes), "loads": len(seen)}


def entry(name: str, args: argparse.Namespace) -> dict[str, float]:
    """The ways in other than ``copy_trained_layers_from`` on a built net."""
    from recaffe.cli import main as cli

    folder = os.path.dirname(args.path)
    model = deploy_prototxt(args, folder)
    if name == "net":  # the whole build: the peak above the imports, the weights included
        imported = status_mb("VmRSS") or 0.0
        start = time.perf_counter()
        net = recaffe.Net(model, recaffe.TEST, weights_file=args.path)
        seconds = time.perf_counter() - start
        weights_mb = sum(blob.count() for blob in net.params) * 4 / MB
        return {"seconds": seconds, "extra_mb": peak_mb() - imported - weights_mb, "weights_mb": weights_mb}
    if name == "copy_from":
        import caffe

        return around_loads(lambda: caffe.Net(model, caffe.TEST).copy_from(args.path))
    if name == "test":
        return around_loads(lambda: cli.main(["test", "-model", model, "-weights", args.path,
                                              "-iterations", "1"]))
    solver = write_solver(args, folder)
    return around_loads(lambda: cli.main(["train", "-solver", solver, "-weights", args.path]))


def phase(name: str, args: argparse.Namespace) -> dict[str, float]:
    if name == "v1":
        write_v1(args.path)
        return {}
    if name in ENTRIES:
        return entry(name, args)
    net = build(args)
    if name == "write":
        fill(net)
        seconds, extra = measure(lambda: net.save(args.path))
        return {"seconds": seconds, "extra_mb": extra, "file_mb": os.path.getsize(args.path) / MB}
    path = args.path + (".v1" if name == "read-v1" else "")
    seconds, extra = measure(lambda: net.copy_trained_layers_from(path))
    loaded = [blob.data.clone() for blob in net.params]
    fill(net)
    exact = all(torch.equal(a, blob.data) for a, blob in zip(loaded, net.params))
    weights_mb = sum(blob.count() for blob in net.params) * 4 / MB
    return {"seconds": seconds, "extra_mb": extra, "weights_mb": weights_mb, "exact": exact}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--outputs", type=int, default=6000)
    parser.add_argument("--inputs", type=int, default=10000)
    parser.add_argument("--net", choices=("ip", "caffenet"), default="ip")
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--phase", choices=("write", "read", "v1", "read-v1", *ENTRIES),
                        help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args)))
        return
    weights_mb = args.outputs * args.inputs * 4 / MB
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        path = os.path.join(folder, "big.caffemodel")
        count = args.outputs * args.inputs
        if args.net == "caffenet":
            print("CaffeNet (bvlc_reference_caffenet deploy), seeded weights")
        else:
            print(f"one InnerProduct layer, {args.outputs} x {args.inputs} = {count / 1e6:.0f}M floats "
                  f"({weights_mb:.0f} MB of weights)")
        for name in ("write", "read", "v1", "read-v1", *ENTRIES):
            command = [sys.executable, "-m", "benchmarks.caffemodel_io", "--phase", name, "--path", path,
                       "--outputs", str(args.outputs), "--inputs", str(args.inputs), "--net", args.net]
            result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            os.sync()  # let the written file reach the disk before the next phase is timed
            if not result:
                continue
            weights_mb = result.get("weights_mb", weights_mb)
            extras = {k: v for k, v in result.items() if k not in ("seconds", "extra_mb", "weights_mb")}
            print(f"{name:>9}: {result['seconds']:6.2f} s, peak extra memory {result['extra_mb']:7.0f} MB "
                  f"({result['extra_mb'] / weights_mb:.2f}x the weights) {extras}")


if __name__ == "__main__":
    main()
