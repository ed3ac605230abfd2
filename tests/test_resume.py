"""Exact resume (recaffe.resume): training 0 -> 60 in one run, or 0 -> 25 and then 25 -> 60 from the
snapshot, gives byte-identical .caffemodel files: the data layers read on where they were and every
random stream (crops, mirrors, Dropout, shuffles) continues where it was."""

from __future__ import annotations

import pathlib

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

import recaffe
from recaffe.data import crand
from recaffe.io import prototxt
from recaffe.proto import caffe_pb2
from tests.data.helpers import make_datum, write_db

LENET = """name: "LeNet"
layer {{ name: "d" type: "Data" top: "data" top: "label" include {{ phase: TRAIN }}
  transform_param {{ scale: 0.00390625 crop_size: 12 mirror: true }}
  data_param {{ source: "{root}/train" batch_size: 5 backend: LMDB prefetch: 3 }} }}
layer {{ name: "d" type: "Data" top: "data" top: "label" include {{ phase: TEST }}
  transform_param {{ scale: 0.00390625 crop_size: 12 mirror: true }}
  data_param {{ source: "{root}/test" batch_size: 4 backend: LMDB }} }}
layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param {{ num_output: 4 kernel_size: 3 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}
layer {{ name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
  convolution_param {{ num_output: 6 kernel_size: 3 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "conv2" top: "ip1"
  inner_product_param {{ num_output: 16 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }}
layer {{ name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param {{ num_output: 3 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }}
"""

DROPOUT = """name: "dropout"
layer {{ name: "h" type: "HDF5Data" top: "data" top: "label" include {{ phase: TRAIN }}
  hdf5_data_param {{ source: "{root}/h5.txt" batch_size: 6 shuffle: true }} }}
layer {{ name: "img" type: "ImageData" top: "image" top: "image_label" include {{ phase: TRAIN }}
  transform_param {{ crop_size: 4 mirror: true scale: 0.01 }}
  image_data_param {{ source: "{root}/images.txt" batch_size: 3 shuffle: true }} }}
layer {{ name: "h" type: "HDF5Data" top: "data" top: "label" include {{ phase: TEST }}
  hdf5_data_param {{ source: "{root}/h5.txt" batch_size: 4 }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
  inner_product_param {{ num_output: 12 weight_filler {{ type: "gaussian" std: 0.3 }} }} }}
layer {{ name: "drop1" type: "Dropout" bottom: "ip1" top: "ip1" dropout_param {{ dropout_ratio: 0.4 }} }}
layer {{ name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param {{ num_output: 3 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }}
layer {{ name: "iip" type: "InnerProduct" bottom: "image" top: "iip" include {{ phase: TRAIN }}
  inner_product_param {{ num_output: 3 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "iloss" type: "SoftmaxWithLoss" bottom: "iip" bottom: "image_label" top: "iloss"
  include {{ phase: TRAIN }} }}
"""


def _lenet_data(root: pathlib.Path) -> None:
    rng = np.random.default_rng(0)
    for name, count in (("train", 23), ("test", 9)):  # batches straddle the end of the database
        write_db(root / name, {f"{i:05d}": make_datum(i % 3, (1, 16, 16), rng.integers(0, 256, (1, 16, 16)))
                               for i in range(count)})


def _dropout_data(root: pathlib.Path) -> None:
    rng = np.random.default_rng(1)
    names = []
    for i, rows in enumerate((7, 11, 5)):
        names.append(str(root / f"part{i}.h5"))
        with h5py.File(names[-1], "w") as f:
            f["data"] = rng.normal(size=(rows, 8)).astype(np.float32)
            f["label"] = rng.integers(0, 3, rows).astype(np.float32)
    (root / "h5.txt").write_text("\n".join(names) + "\n")
    lines = []
    for i in range(7):
        Image.fromarray(rng.integers(0, 256, (6, 6, 3)).astype(np.uint8)).save(root / f"im{i}.png")
        lines.append(f"{root / f'im{i}.png'} {i % 3}")
    (root / "images.txt").write_text("\n".join(lines) + "\n")


def _solver(root: pathlib.Path, net: str, prefix: str, max_iter: int,
            hdf5: bool) -> caffe_pb2.SolverParameter:
    param = caffe_pb2.SolverParameter(
        net=str(root / "net.prototxt"), base_lr=0.05, momentum=0.9, weight_decay=0.0005, lr_policy="step",
        gamma=0.5, stepsize=20, max_iter=max_iter, snapshot=25, snapshot_prefix=str(root / prefix),
        random_seed=1701, test_iter=[3], test_interval=10, display=0,
        snapshot_format=caffe_pb2.SolverParameter.HDF5 if hdf5 else caffe_pb2.SolverParameter.BINARYPROTO)
    (root / "net.prototxt").write_text(net.format(root=root))
    return param


def train(param: caffe_pb2.SolverParameter, resume_from: pathlib.Path | None = None) -> None:
    """One training run, as a fresh ``caffe train`` process would do it."""
    crand.PROCESS_RAND.seed(1)  # glibc's rand() starts as srand(1) in every process
    solver = recaffe.load_solver(param)
    solver.solve(resume_from)


def weights_of(path: pathlib.Path) -> bytes:
    if path.suffix == ".h5":
        with h5py.File(path, "r") as f:
            return b"".join(f[f"data/{layer}/{i}"][()].tobytes() for layer in sorted(f["data"])
                            for i in sorted(f[f"data/{layer}"]))
    return path.read_bytes()


@pytest.mark.parametrize("case", ["lenet", "dropout"])
def test_resume_at_25_is_the_uninterrupted_run(tmp_path, case) -> None:
    """0 -> 60 against 0 -> 25, 25 -> 60 (the snapshot's iteration is mid-epoch, between tests)."""
    torch.set_num_threads(1)
    net, make_data, hdf5 = (LENET, _lenet_data, False) if case == "lenet" else (DROPOUT, _dropout_data, True)
    make_data(tmp_path)
    ext = ".caffemodel.h5" if hdf5 else ".caffemodel"
    state_ext = ".solverstate.h5" if hdf5 else ".solverstate"
    train(_solver(tmp_path, net, "whole", 60, hdf5))
    train(_solver(tmp_path, net, "split", 25, hdf5))
    train(_solver(tmp_path, net, "split", 60, hdf5), tmp_path / f"split_iter_25{state_ext}")
    whole = (tmp_path / f"whole_iter_60{ext}")
    split = (tmp_path / f"split_iter_60{ext}")
    if not hdf5:
        assert whole.read_bytes() == split.read_bytes()
    assert weights_of(whole) == weights_of(split)
    # without the resume record (Caffe's own fields only) the runs part: the test can fail
    caffe_only = tmp_path / f"caffe_only{state_ext}"
    if hdf5:
        caffe_only.write_bytes((tmp_path / f"split_iter_25{state_ext}").read_bytes())
        with h5py.File(caffe_only, "a") as f:
            del f["recaffe_resume"]
    else:
        state = prototxt.read_binary(tmp_path / "split_iter_25.solverstate", caffe_pb2.SolverState())
        state.ClearField("recaffe_resume")
        caffe_only.write_bytes(state.SerializeToString())
    train(_solver(tmp_path, net, "caffe", 60, hdf5), caffe_only)
    assert weights_of(tmp_path / f"caffe_iter_60{ext}") != weights_of(whole)


def test_bvlc_caffe_reads_the_state_and_skips_the_resume_record(tmp_path) -> None:
    # BVLC's SolverState: fields 1-4 only (a message class built from our descriptor, minus field 1000)
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    _lenet_data(tmp_path)
    train(_solver(tmp_path, LENET, "s", 25, False))
    file_proto = descriptor_pb2.FileDescriptorProto()
    caffe_pb2.DESCRIPTOR.CopyToProto(file_proto)
    file_proto.name = "bvlc_caffe.proto"  # a pool of its own: same package, no clash
    state_type = next(m for m in file_proto.message_type if m.name == "SolverState")
    kept = [f for f in state_type.field if f.number < 1000]
    assert [f.number for f in kept] == [1, 2, 3, 4]
    del state_type.field[:]
    state_type.field.extend(kept)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    bvlc_state = message_factory.GetMessageClass(pool.FindMessageTypeByName("caffe.SolverState"))
    data = (tmp_path / "s_iter_25.solverstate").read_bytes()
    theirs, ours = bvlc_state.FromString(data), caffe_pb2.SolverState.FromString(data)
    assert ours.HasField("recaffe_resume")
    assert (theirs.iter, theirs.learned_net, theirs.current_step) == (25, ours.learned_net, 1)
    assert [h.data for h in theirs.history] == [h.data for h in ours.history]


def test_resume_at_another_iteration(tmp_path) -> None:
    # 7: inside the first epoch of the 23-record database, before the first test after iteration 0
    torch.set_num_threads(1)
    _lenet_data(tmp_path)
    train(_solver(tmp_path, LENET, "whole", 30, False))
    train(_solver(tmp_path, LENET, "split", 7, False))
    train(_solver(tmp_path, LENET, "split", 30, False), tmp_path / "split_iter_7.solverstate")
    whole, split = tmp_path / "whole_iter_30.caffemodel", tmp_path / "split_iter_30.caffemodel"
    assert whole.read_bytes() == split.read_bytes()
