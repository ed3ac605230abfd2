"""Tiny training setups for the command-line tests: synthetic LMDBs of Datums, a net that reads
them, and solver files written with the fields a test needs."""

from __future__ import annotations

import pathlib

import lmdb
import numpy as np
from google.protobuf import text_format

from recaffe.proto import caffe_pb2

NET = """name: "lmdb_tiny"
layer {{
  name: "data" type: "Data" top: "data" top: "label" include {{ phase: TRAIN }}
  transform_param {{ scale: 0.00390625 }}
  data_param {{ source: "{train}" batch_size: 4 backend: LMDB }}
}}
layer {{
  name: "data" type: "Data" top: "data" top: "label" include {{ phase: TEST }}
  transform_param {{ scale: 0.00390625 }}
  data_param {{ source: "{test}" batch_size: 4 backend: LMDB }}
}}
layer {{
  name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
  inner_product_param {{ num_output: 8 weight_filler {{ type: "xavier" }} }}
}}
layer {{ name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }}
layer {{
  name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param {{ num_output: 2 weight_filler {{ type: "xavier" }} }}
}}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }}
layer {{
  name: "accuracy" type: "Accuracy" bottom: "ip2" bottom: "label" top: "accuracy"
  include {{ phase: TEST }}
}}
layer {{
  name: "train_accuracy" type: "Accuracy" bottom: "ip2" bottom: "label" top: "train_accuracy"
  include {{ phase: TRAIN stage: "monitor" }}
}}
"""

SOLVER = {
    "net": "net.prototxt",
    "test_iter": [2],
    "test_interval": 4,
    "base_lr": 0.05,
    "momentum": 0.9,
    "weight_decay": 0.0005,
    "lr_policy": "step",
    "gamma": 0.5,
    "stepsize": 6,
    "display": 2,
    "max_iter": 10,
    "snapshot": 5,
    "snapshot_prefix": "snapshots/tiny",
    "random_seed": 1701,
    "solver_mode": "CPU",
}

ENUMS = ("solver_mode", "snapshot_format", "solver_type")


def make_lmdb(path: pathlib.Path, num: int, seed: int, shape: tuple[int, int, int] = (3, 2, 2)) -> None:
    """``num`` uint8 Datums of ``shape`` (C, H, W) under keys ``%08d``: label 0 dark, label 1
    bright, plus noise."""
    rng = np.random.default_rng(seed)
    env = lmdb.open(str(path), map_size=1 << 24, subdir=True)
    with env.begin(write=True) as txn:
        for i in range(num):
            label = i % 2
            pixels = rng.integers(0, 96, size=shape) + 128 * label
            datum = caffe_pb2.Datum(channels=shape[0], height=shape[1], width=shape[2], label=label,
                                    data=pixels.astype(np.uint8).tobytes())
            txn.put(f"{i:08d}".encode(), datum.SerializeToString())
    env.close()


def write_solver(path: pathlib.Path, **fields: object) -> pathlib.Path:
    """A solver prototxt with ``SOLVER``'s fields, overridden by ``fields`` (None removes one)."""
    values = {**SOLVER, **fields}
    lines = []
    for name, value in values.items():
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            text = f'"{item}"' if isinstance(item, str) and name not in ENUMS else item
            lines.append(f"{name}: {text}")
    path.write_text("\n".join(lines) + "\n")
    text_format.Parse(path.read_text(), caffe_pb2.SolverParameter())  # fail early on a typo
    return path


def training_dir(root: pathlib.Path, **fields: object) -> pathlib.Path:
    """``root`` with train/test LMDBs (20 and 8 records), net.prototxt, a snapshots/ folder and
    solver.prototxt; returns the solver's path. Paths in the files are relative to ``root``."""
    make_lmdb(root / "train_lmdb", 20, seed=1)
    make_lmdb(root / "test_lmdb", 8, seed=2)
    (root / "net.prototxt").write_text(NET.format(train="train_lmdb", test="test_lmdb"))
    (root / "snapshots").mkdir()
    return write_solver(root / "solver.prototxt", **fields)
