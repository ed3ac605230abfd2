"""A small SSD-style net (Normalize, Permute, Flatten, PriorBox, Concat, Softmax, DetectionOutput)
with seeded weights: every blob OpenCV dnn computes equals recaffe's, and so do the detections."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch

import recaffe
from recaffe import forks
from recaffe.io import prototxt
from tests.forks.test_dialects import FIXTURES

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless (the forks extra) is not installed")


def test_tiny_ssd_equals_opencv_dnn(tmp_path: pathlib.Path) -> None:
    path = FIXTURES / "tiny_ssd.prototxt"
    recaffe.set_random_seed(3)
    net = recaffe.Net(str(path), recaffe.TEST)
    weights = tmp_path / "tiny_ssd.caffemodel"
    prototxt.write_binary(
        weights, forks.get_dialect("ssd").raise_net(net.to_proto())
    )  # the fork's own encoding
    x = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    net.blobs["data"].data.copy_(torch.from_numpy(x))
    net.forward()
    theirs = cv2.dnn.readNetFromCaffe(str(path), str(weights))
    theirs.setInput(x)
    names = ["conv1_norm", "loc", "conf_flatten", "priors", "detection_out"]
    outputs = dict(zip(names, theirs.forward(names)))
    for name in names[:-1]:
        mine = net.blobs[name].data.numpy()
        scale = max(1.0, float(np.abs(mine).max()))
        np.testing.assert_allclose(
            outputs[name].reshape(mine.shape), mine, rtol=0, atol=1e-4 * scale, err_msg=name
        )
    mine = net.blobs["detection_out"].data.numpy().reshape(-1, 7)
    cv_rows = outputs["detection_out"].reshape(-1, 7)
    assert len(mine) == len(cv_rows) > 10
    # the fork writes by image, label, score; OpenCV by image and score: compare in one order
    order = lambda rows: rows[np.lexsort((-rows[:, 2], rows[:, 1], rows[:, 0]))]  # noqa: E731
    np.testing.assert_allclose(order(cv_rows), order(mine), rtol=0, atol=1e-4)
