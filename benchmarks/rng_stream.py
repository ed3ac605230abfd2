"""Speed of Caffe's exact normal stream (``CaffeRNG.gaussian``) and of building nets that use it.

    python -m benchmarks.rng_stream [--draws 2000000] [--reps 5]

Each rep times the exact stream next to numpy's own float32 normal generator (not Caffe's
numbers; a yardstick that sees the same machine load), so the ratio is the stable figure on a
shared machine. "build" times constructing the Flickr-style deploy net (its gaussian fillers draw
~57M values before any weights would overwrite them). CPU time of this process is reported.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import recaffe
from benchmarks import models
from recaffe.rng import CaffeRNG


def cpu_seconds(step) -> float:  # type: ignore[no-untyped-def]
    start = time.process_time()
    step()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=2_000_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--no-build", action="store_true", help="skip the net construction timing")
    args = parser.parse_args()
    exact, yardstick = [], []
    for rep in range(args.reps):
        stream, numpy_rng = CaffeRNG(rep), np.random.default_rng(rep)
        exact.append(cpu_seconds(lambda: stream.gaussian(args.draws, 0.0, 1.0)))  # noqa: B023
        yardstick.append(cpu_seconds(lambda: numpy_rng.standard_normal(args.draws, dtype=np.float32)))  # noqa: B023
    rate = args.draws / statistics.median(exact) / 1e6
    ratio = statistics.median(e / y for e, y in zip(exact, yardstick))
    print(f"exact gaussian stream: {rate:.1f} M draws/s (median of {args.reps}); "
          f"{ratio:.2f}x numpy's float32 normal time")
    if not args.no_build:
        path = models.require_caffe_models() / "models/finetune_flickr_style/deploy.prototxt"
        recaffe.set_random_seed(1)
        builds = [cpu_seconds(lambda: recaffe.Net(str(path), recaffe.TEST)) for _ in range(3)]
        print(f"build Flickr-style deploy net (gaussian fillers): {statistics.median(builds):.2f} s")


if __name__ == "__main__":
    main()
