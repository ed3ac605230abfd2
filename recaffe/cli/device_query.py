"""``caffe device_query -gpu IDS``: the properties of CUDA devices, as PyTorch reports them.

Without ``-gpu`` every visible device is listed (Caffe lists none). When PyTorch sees no CUDA
device the command says so and exits with status 1.
"""

from __future__ import annotations

import argparse
import logging

import torch

from recaffe.cli import common

log = logging.getLogger(__name__)

# (label, attribute of torch.cuda.get_device_properties), where this torch build has it
_PROPERTIES = (
    ("Major revision number", "major"),
    ("Minor revision number", "minor"),
    ("Name", "name"),
    ("Total global memory", "total_memory"),
    ("Total shared memory per block", "shared_memory_per_block"),
    ("Total registers per multiprocessor", "regs_per_multiprocessor"),
    ("Warp size", "warp_size"),
    ("Maximum threads per multiprocessor", "max_threads_per_multi_processor"),
    ("Number of multiprocessors", "multi_processor_count"),
    ("L2 cache size", "L2_cache_size"),
    ("Integrated", "is_integrated"),
    ("UUID", "uuid"),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("device_query", help="show GPU diagnostic information",
                                   description=__doc__.split("\n")[0])
    common.add_gpu_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    log.info("Querying GPUs %s", args.gpu or "all")
    if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
        log.error("No CUDA device is available to PyTorch (torch %s, CUDA build %s).",
                  torch.__version__, torch.version.cuda or "none")
        return 1
    for device_id in common.gpu_ids(args.gpu or "all"):
        for line in describe(device_id):
            log.info("%s", line)
    return 0


def describe(device_id: int) -> list[str]:
    """``Label: value`` lines for one device."""
    props = torch.cuda.get_device_properties(device_id)
    lines = [f"Device id:                     {device_id}"]
    for label, attribute in _PROPERTIES:
        if hasattr(props, attribute):
            lines.append(f"{label + ':':<31}{getattr(props, attribute)}")
    return lines
