"""DenseNet's Pooling ceil_mode (BVLC PR #3057): read by name as round_mode, equal to OpenCV dnn."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch

import recaffe
from recaffe import forks
from recaffe.io import prototxt
from tests.forks.test_dialects import FIXTURES


def test_ceil_mode_pooling_equals_opencv_dnn(tmp_path: pathlib.Path) -> None:
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless (the forks extra) is not installed")
    path = FIXTURES / "densenet_pool.prototxt"
    recaffe.set_random_seed(2)
    net = recaffe.Net(str(path), recaffe.TEST)
    weights = tmp_path / "densenet_pool.caffemodel"
    prototxt.write_binary(weights, forks.get_dialect("densenet").raise_net(net.to_proto()))
    x = np.random.default_rng(0).random((1, 4, 9, 9), dtype=np.float32)
    net.blobs["data"].data.copy_(torch.from_numpy(x))
    net.forward()
    theirs = cv2.dnn.readNetFromCaffe(str(path), str(weights))
    theirs.setInput(x)
    names = ["floor", "ceil", "default"]
    for name, output in zip(names, theirs.forward(names)):
        mine = net.blobs[name].data.numpy()
        assert output.shape == mine.shape, name
        np.testing.assert_allclose(output, mine, rtol=0, atol=1e-5, err_msg=name)
    assert [net.blobs[n].shape[2] for n in names] == [4, 4, 5]
