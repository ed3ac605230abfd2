"""HDF5Output, after Caffe's test_hdf5_output_layer: what a forward writes, read back."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from recaffe.blob import Blob
from recaffe.io import prototxt
from recaffe.layer import LayerError
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS


def output_layer(file_name: str, bottom: list[Blob]):
    text = f'name: "out" type: "HDF5Output" hdf5_output_param {{ file_name: "{file_name}" }}'
    param = prototxt.parse_text(text, caffe_pb2.LayerParameter())
    layer = LAYERS.get("HDF5Output")(param)
    layer.setup(bottom, [])
    return layer


def blob(values: np.ndarray) -> Blob:
    b = Blob(values.shape)
    b.data.copy_(torch.from_numpy(values))
    return b


def test_forward_writes_data_and_label(tmp_path) -> None:
    data = np.arange(5 * 8 * 5 * 5, dtype=np.float32).reshape(5, 8, 5, 5)
    label = np.arange(5, dtype=np.float32)  # 1-D: written with Caffe's legacy 4-D shape
    path = str(tmp_path / "out.h5")
    bottom = [blob(data), blob(label)]
    layer = output_layer(path, bottom)
    with h5py.File(path, "r") as f:
        assert not list(f)  # created empty at setup
    layer.run_forward(bottom, [])
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["data"][()], data)
        assert f["label"].shape == (5, 1, 1, 1) and f["label"].dtype == np.float32
        np.testing.assert_array_equal(f["label"][()].reshape(-1), label)
    bottom[0].data.fill_(7)
    layer.run_forward(bottom, [])  # a second forward replaces the datasets
    with h5py.File(path, "r") as f:
        assert (f["data"][()] == 7).all()
    layer.run_backward([], [True, True], bottom)  # does nothing, as in Caffe


def test_errors(tmp_path) -> None:
    bottom = [blob(np.zeros((2, 3), np.float32)), blob(np.zeros(3, np.float32))]
    layer = output_layer(str(tmp_path / "o.h5"), bottom)
    with pytest.raises(LayerError, match="same batch size, got 2 and 3"):
        layer.run_forward(bottom, [])
    with pytest.raises(LayerError, match=r"cannot write the HDF5 output file '.*dir.h5': the folder "
                       "'.*no' does not exist"):
        output_layer(str(tmp_path / "no" / "dir.h5"), bottom)
