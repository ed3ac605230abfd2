"""compute_image_mean, extract_features and the dataset converters end to end on tiny inputs."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import recaffe
from recaffe.cli.main import main
from recaffe.data import DataError
from recaffe.data.datum import datum_array, parse_datum
from recaffe.data.transformer import load_mean_file
from recaffe.proto import caffe_pb2
from recaffe.tools.compute_image_mean import compute_image_mean
from recaffe.tools.datasets import convert_cifar10, convert_digits, convert_mnist
from recaffe.tools.extract_features import extract_features
from tests.data.helpers import make_datum, read_all, write_db


def test_compute_image_mean(tmp_path, caplog) -> None:
    pixels = np.random.RandomState(0).randint(0, 256, size=(3, 2, 4, 5)).astype(np.uint8)
    source = write_db(tmp_path / "db", {str(i): make_datum(i, (2, 4, 5), p) for i, p in enumerate(pixels)})
    caplog.set_level(logging.INFO)
    mean = compute_image_mean(source, str(tmp_path / "mean.binaryproto"))
    want = pixels.astype(np.float32).sum(0) / np.float32(3)
    np.testing.assert_array_equal(mean, want)
    np.testing.assert_array_equal(load_mean_file(str(tmp_path / "mean.binaryproto")), want)
    assert "mean_value channel [1]" in caplog.text


def test_compute_image_mean_errors(tmp_path) -> None:
    source = write_db(tmp_path / "db", {"a": make_datum(0, (1, 2, 2), 1), "b": make_datum(0, (1, 3, 3), 1)})
    with pytest.raises(DataError, match="record 'b': incorrect data field size 9"):
        compute_image_mean(source)
    with pytest.raises(DataError, match="is empty"):
        compute_image_mean(write_db(tmp_path / "empty", {}))


def test_extract_features(tmp_path) -> None:
    source = write_db(tmp_path / "db", {str(i): make_datum(i, (1, 2, 3), i) for i in range(4)})
    (tmp_path / "net.prototxt").write_text(
        f'layer {{ name: "d" type: "Data" top: "data" top: "label" '
        f'data_param {{ source: "{source}" backend: LMDB batch_size: 3 }} }}'
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
        'inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }')
    recaffe.set_random_seed(1)
    net = recaffe.Net(str(tmp_path / "net.prototxt"), recaffe.TEST)
    net.save(str(tmp_path / "w.caffemodel"))
    weights = net.layer_by_name("ip").blobs[0].data.numpy()
    counts = extract_features(str(tmp_path / "w.caffemodel"), str(tmp_path / "net.prototxt"), ["ip", "label"],
                              [str(tmp_path / "ip_db"), str(tmp_path / "label_db")], 2, "lmdb")
    assert counts == [6, 6]
    got = read_all(str(tmp_path / "ip_db"))
    assert [k for k, _ in got] == [f"{i:010d}".encode() for i in range(6)]
    for i, (_, value) in enumerate(got):  # items 0,1,2 then 3,0,1 (the database wraps)
        datum = parse_datum(value)
        assert (datum.channels, datum.height, datum.width) == (2, 1, 1)
        np.testing.assert_allclose(datum.float_data, weights.sum(1) * ([0, 1, 2, 3, 0, 1][i]), rtol=1e-6)
    labels = [parse_datum(v).float_data[0] for _, v in read_all(str(tmp_path / "label_db"))]
    assert labels == [0, 1, 2, 3, 0, 1]
    with pytest.raises(ValueError, match="unknown feature blob name 'fc7'"):
        extract_features(str(tmp_path / "w.caffemodel"), str(tmp_path / "net.prototxt"), ["fc7"],
                         [str(tmp_path / "x")], 1)


def write_idx(path, magic: int, array: np.ndarray) -> str:
    header = np.array([magic, *array.shape], dtype=">u4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())
    return str(path)


def test_convert_mnist(tmp_path) -> None:
    images = np.random.RandomState(0).randint(0, 256, size=(3, 4, 5))
    labels = np.array([7, 0, 9])
    image_file = write_idx(tmp_path / "images", 2051, images)
    label_file = write_idx(tmp_path / "labels", 2049, labels)
    assert main(["convert_mnist", image_file, label_file, str(tmp_path / "db"), "--backend=lmdb"]) == 0
    got = read_all(str(tmp_path / "db"))
    assert [k for k, _ in got] == [b"00000000", b"00000001", b"00000002"]
    for i, (_, value) in enumerate(got):
        datum = parse_datum(value)
        assert datum.label == labels[i]
        np.testing.assert_array_equal(datum_array(datum), images[i][None])
    with pytest.raises(DataError, match="incorrect label file magic"):
        convert_mnist(image_file, image_file, str(tmp_path / "db2"))


def test_convert_cifar10(tmp_path) -> None:
    files = {f"data_batch_{i}.bin": 2 for i in range(1, 6)} | {"test_batch.bin": 3}
    content = {}
    for n, (name, count) in enumerate(files.items()):
        records = np.random.RandomState(n).randint(0, 256, size=(count, 3073)).astype(np.uint8)
        records[:, 0] %= 10
        (tmp_path / name).write_bytes(records.tobytes())
        content[name] = records
    assert convert_cifar10(str(tmp_path), str(tmp_path), "lmdb") == (10, 3)
    train = read_all(str(tmp_path / "cifar10_train_lmdb"))
    assert [k for k, _ in train][:3] == [b"00000", b"00001", b"00002"]
    datum = parse_datum(train[5][1])  # the second record of data_batch_3
    assert datum.label == content["data_batch_3.bin"][1, 0]
    np.testing.assert_array_equal(datum_array(datum).reshape(-1), content["data_batch_3.bin"][1, 1:])
    (tmp_path / "test_batch.bin").write_bytes(b"\x00" * 10)
    (tmp_path / "other").mkdir()
    with pytest.raises(DataError, match="test_batch.bin' is not a whole number of 3073-byte"):
        convert_cifar10(str(tmp_path), str(tmp_path / "other"), "lmdb")
    assert not list((tmp_path / "other").iterdir())


def test_convert_digits(tmp_path) -> None:
    pytest.importorskip("sklearn")
    assert convert_digits(str(tmp_path)) == (1500, 297)
    test = read_all(str(tmp_path / "digits_test_lmdb"))
    assert len(test) == 297 and test[0][0] == b"00000000"
    digits = [datum_array(parse_datum(v)) for _, v in test[:20]]
    assert all(d.shape == (1, 28, 28) and not d[:, :4].any() and not d[:, :, 24:].any() for d in digits)
    assert {parse_datum(v).label for _, v in read_all(str(tmp_path / "digits_train_lmdb"))} == set(range(10))


def test_convert_digits_runs_again_over_its_own_databases(tmp_path) -> None:
    """``make demo`` twice: the second conversion replaces the databases with the same records."""
    pytest.importorskip("sklearn")
    assert main(["convert_digits", str(tmp_path)]) == 0
    first = read_all(str(tmp_path / "digits_test_lmdb"))
    assert main(["convert_digits", str(tmp_path)]) == 0
    assert read_all(str(tmp_path / "digits_test_lmdb")) == first


def test_digits_example_net_reads_the_databases(tmp_path, monkeypatch) -> None:
    pytest.importorskip("sklearn")
    from tests.conftest import TESTS

    convert_digits(str(tmp_path / "examples" / "digits"))
    net_param = recaffe.io.prototxt.read_net_param(TESTS.parent / "examples/digits/lenet_train_test.prototxt")
    data_layers = [layer for layer in net_param.layer if layer.type == "Data"]
    monkeypatch.chdir(tmp_path)  # sources are relative to where recaffe runs
    net = recaffe.Net(caffe_pb2.NetParameter(layer=data_layers[1:], state={"phase": recaffe.TEST}))
    net.forward()
    data = net.blobs["data"].data
    assert tuple(data.shape) == (99, 1, 28, 28) and float(data.max()) <= 255 / 256
