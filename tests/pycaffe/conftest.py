"""Fixtures for the pycaffe tests: nets written to temporary prototxt files."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import pytest

import caffe

# Two InnerProducts share their weights ("w") and read the same input (so a Split is inserted);
# a ReLU works in place; the sum feeds a softmax loss.
TINY_NET = """
name: "tiny" force_backward: true
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 3 } shape { dim: 4 } } }
layer { name: "ip_a" type: "InnerProduct" bottom: "data" top: "a" param { name: "w" }
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 }
                              bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "a" top: "a" }
layer { name: "ip_b" type: "InnerProduct" bottom: "data" top: "b" param { name: "w" }
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 }
                              bias_term: false } }
layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "s" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "s" bottom: "label" top: "loss" }
"""


@pytest.fixture
def write_net(tmp_path: pathlib.Path) -> Callable[[str], str]:
    """Write prototxt text to a fresh file; returns its path."""
    count = [0]

    def write(text: str) -> str:
        count[0] += 1
        path = tmp_path / f"net{count[0]}.prototxt"
        path.write_text(text)
        return str(path)

    return write


@pytest.fixture
def tiny_net(write_net: Callable[[str], str]) -> caffe.Net:
    caffe.set_random_seed(1701)
    return caffe.Net(write_net(TINY_NET), caffe.TRAIN)
