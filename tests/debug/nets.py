"""Small training setups for the debugging tools: the command-line tests' tiny LMDB net with an
optional Python layer, and LeNet with Dropout on 16x16 images."""

from __future__ import annotations

import pathlib

from tests.cli import nets

PYTHON_LAYER = """layer {{
  name: "{name}" type: "Python" bottom: "ip1" top: "ip1p"
  python_param {{ module: "tests.debug.python_layers" layer: "{layer}" param_str: "{param_str}" }}
}}
"""

TINY = """name: "tiny"
layer {{
  name: "data" type: "Data" top: "data" top: "label"
  transform_param {{ scale: 0.00390625 }}
  data_param {{ source: "train_lmdb" batch_size: 4 backend: LMDB }}
}}
layer {{
  name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
  param {{ lr_mult: {lr_mult} }}
  inner_product_param {{ num_output: 8 weight_filler {{ type: "xavier" }} }}
}}
{python}layer {{ name: "relu1" type: "ReLU" bottom: "{relu_input}" top: "relu1" }}
layer {{
  name: "ip2" type: "InnerProduct" bottom: "relu1" top: "ip2"
  inner_product_param {{ num_output: 2 weight_filler {{ type: "xavier" }} }}
}}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }}
"""

LENET = """name: "LeNet16"
layer {
  name: "mnist" type: "Data" top: "data" top: "label"
  transform_param { scale: 0.00390625 }
  data_param { source: "train_lmdb" batch_size: 4 backend: LMDB }
}
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 20 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
  convolution_param { num_output: 50 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1"
  inner_product_param { num_output: 100 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "drop1" type: "Dropout" bottom: "ip1" top: "ip1" dropout_param { dropout_ratio: 0.5 } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""


def tiny_dir(root: pathlib.Path, *, python: str = "", lr_mult: float = 1, **solver: object) -> pathlib.Path:
    """``root`` with a 20-record LMDB, the tiny net (``python`` = "Layer:param_str" inserts a Python
    layer "inject" after ip1) and a solver (no test net); returns the solver's path."""
    if not (root / "train_lmdb").exists():
        nets.make_lmdb(root / "train_lmdb", 20, seed=1)
    layer = ""
    if python:
        cls, _, param_str = python.partition(":")
        layer = PYTHON_LAYER.format(name="inject", layer=cls, param_str=param_str)
    text = TINY.format(lr_mult=lr_mult, python=layer, relu_input="ip1p" if python else "ip1")
    (root / "net.prototxt").write_text(text)
    (root / "snapshots").mkdir(exist_ok=True)
    fields = {"test_iter": None, "test_interval": None, "display": 1, "lr_policy": "fixed",
              "gamma": None, "stepsize": None, "snapshot": 0, "max_iter": 8, **solver}
    return nets.write_solver(root / "solver.prototxt", **fields)


def lenet_dir(root: pathlib.Path, **solver: object) -> pathlib.Path:
    """``root`` with a 16-record LMDB of 1x16x16 images, LeNet (with Dropout) and its solver."""
    nets.make_lmdb(root / "train_lmdb", 16, seed=3, shape=(1, 16, 16))
    (root / "net.prototxt").write_text(LENET)
    (root / "snapshots").mkdir(exist_ok=True)
    fields = {"test_iter": None, "test_interval": None, "display": 0, "lr_policy": "inv", "gamma": 0.0001,
              "power": 0.75, "stepsize": None, "snapshot": 0, "max_iter": 4, "base_lr": 0.01, **solver}
    return nets.write_solver(root / "solver.prototxt", **fields)
