"""Data layer, after Caffe's test_data_layer: reading, reshaping, crops, seeded sequences, errors."""

from __future__ import annotations

import numpy as np
import pytest

from recaffe import rng
from recaffe.layer import LayerError
from recaffe.proto import caffe_pb2
from tests.data.helpers import BACKENDS, build_layer, fill_db, forward, make_datum, need_backend, write_db

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


def data_param(source: str, backend: str, batch_size: int = 5, extra: str = "") -> str:
    return f'data_param {{ source: "{source}" backend: {backend.upper()} batch_size: {batch_size} {extra} }}'


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    need_backend(request.param)
    return request.param


def test_read(tmp_path, backend) -> None:
    source = fill_db(tmp_path / "db", backend)
    layer, top = build_layer("Data", data_param(source, backend) + " transform_param { scale: 3 }")
    assert top[0].shape == (5, 2, 3, 4) and top[1].shape == (5,)
    for _ in range(7):
        data, label = forward(layer, top)
        np.testing.assert_array_equal(label, np.arange(5))
        want = np.broadcast_to(3.0 * np.arange(5)[:, None, None, None], data.shape)
        np.testing.assert_array_equal(data, want)


def test_wraps_around_and_one_top_means_no_labels(tmp_path) -> None:
    source = fill_db(tmp_path / "db")
    layer, top = build_layer("Data", data_param(source, "lmdb", batch_size=3), tops=1)
    assert not layer.output_labels
    firsts = [forward(layer, top)[0][:, 0, 0, 0].tolist() for _ in range(3)]
    assert firsts == [[0, 1, 2], [3, 4, 0], [1, 2, 3]]


def test_reshape_follows_each_batch(tmp_path, backend) -> None:
    records = {}
    for i in range(5):
        shape = (2, i % 2 + 1, i % 4 + 1)
        records[str(i)] = make_datum(i, shape, np.arange(np.prod(shape)).reshape(shape))
    source = write_db(tmp_path / "db", records, backend)
    layer, top = build_layer("Data", data_param(source, backend, batch_size=1), TEST)
    assert top[0].shape == (1, 2, 1, 1) and top[1].shape == (1,)
    for i in range(5):
        data, label = forward(layer, top)
        assert data.shape == (1, 2, i % 2 + 1, i % 4 + 1) and label[0] == i
        np.testing.assert_array_equal(data.reshape(-1), np.arange(data.size))


@pytest.mark.parametrize("phase", [TRAIN, TEST])
def test_read_crop(tmp_path, phase) -> None:
    source = fill_db(tmp_path / "db", unique_pixels=True)
    rng.set_random_seed(1701)
    transform = " transform_param { scale: 3 crop_size: 1 }"
    layer, top = build_layer("Data", data_param(source, "lmdb") + transform, phase)
    assert top[0].shape == (5, 2, 1, 1)
    for _ in range(2):
        data, label = forward(layer, top)
        np.testing.assert_array_equal(label, np.arange(5))
        centre = data == 3 * np.array([5, 17])[None, :, None, None]
        assert centre.all() if phase == TEST else centre.sum() < 10


def crop_sequence(source: str, forwards: int = 2) -> list[np.ndarray]:
    transform = " transform_param { crop_size: 1 mirror: true }"
    layer, top = build_layer("Data", data_param(source, "lmdb") + transform)
    return [forward(layer, top)[0] for _ in range(forwards)]


def test_seeded_crop_sequences_repeat(tmp_path) -> None:
    source = fill_db(tmp_path / "db", unique_pixels=True)
    rng.set_random_seed(1701)
    first = crop_sequence(source)
    rng.set_random_seed(1701)
    for a, b in zip(first, crop_sequence(source)):
        np.testing.assert_array_equal(a, b)


def test_unseeded_crop_sequences_differ(tmp_path) -> None:
    source = fill_db(tmp_path / "db", unique_pixels=True)
    rng.set_random_seed(1701)
    first = crop_sequence(source)
    for a, b in zip(first, crop_sequence(source)):  # the main stream continues: new engines
        assert (a == b).sum() < a.size


@pytest.mark.parametrize(("transform", "phase", "words"), [
    ("", TRAIN, 1), ("crop_size: 2", TEST, 1), ("crop_size: 2", TRAIN, 3), ("mirror: true", TEST, 3)])
def test_setup_draws_caffe_s_words(tmp_path, transform, phase, words) -> None:
    source = fill_db(tmp_path / "db")
    rng.set_random_seed(21)
    build_layer("Data", data_param(source, "lmdb") + f" transform_param {{ {transform} }}", phase)
    assert rng.get_rng().rand() == rng.CaffeRNG(21).take(words + 1)[-1]


def test_crops_use_the_second_init_rand_engine(tmp_path) -> None:
    source = fill_db(tmp_path / "db", unique_pixels=True)
    rng.set_random_seed(4)
    data = crop_sequence(source, forwards=1)[0]
    engine = rng.CaffeRNG(rng.CaffeRNG(4).take(2)[1])
    pixels = np.arange(24).reshape(2, 3, 4)
    for item in range(5):
        engine.rand()  # mirror: irrelevant for a 1x1 crop
        h, w = engine.rand() % 3, engine.rand() % 4
        np.testing.assert_array_equal(data[item, :, 0, 0], pixels[:, h, w])


def test_prefetch_depth_does_not_change_numbers(tmp_path) -> None:
    source = fill_db(tmp_path / "db", unique_pixels=True)
    runs = []
    for depth in (1, 4):
        rng.set_random_seed(9)
        layer, top = build_layer("Data", data_param(source, "lmdb", 2, f"prefetch: {depth}")
                                 + " transform_param { crop_size: 2 mirror: true }")
        runs.append([forward(layer, top)[0] for _ in range(6)])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_encoded_datums(tmp_path) -> None:
    from recaffe.data import image

    img = np.random.RandomState(0).randint(0, 256, size=(4, 5, 3)).astype(np.uint8)
    encoded = caffe_pb2.Datum(data=image.encode_image(img, "png"), encoded=True, label=7)
    source = write_db(tmp_path / "db", {"a": encoded})
    layer, top = build_layer("Data", data_param(source, "lmdb", batch_size=2))
    data, label = forward(layer, top)
    np.testing.assert_array_equal(data[1], img.transpose(2, 0, 1))
    assert label.tolist() == [7, 7]


def test_missing_database_names_layer_source_and_backend(tmp_path) -> None:
    with pytest.raises(LayerError, match=r"layer 'd' \(Data\): cannot open the LMDB database '.*nowhere'"):
        build_layer("Data", data_param(str(tmp_path / "nowhere"), "lmdb"))


def test_default_backend_is_leveldb(tmp_path) -> None:
    source = fill_db(tmp_path / "db")
    with pytest.raises(LayerError, match="LEVELDB database"):
        build_layer("Data", f'data_param {{ source: "{source}" batch_size: 1 }}')


def test_corrupt_records(tmp_path) -> None:
    good = make_datum(0, (1, 2, 2), 1)
    short = caffe_pb2.Datum(channels=1, height=2, width=2, data=b"\x01\x02\x03")
    source = write_db(tmp_path / "bad_first", {"a": b"\x08", "b": good})
    message = r"layer 'd' \(Data\): record 'a' of the LMDB database .* not a valid Datum"
    with pytest.raises(LayerError, match=message):
        build_layer("Data", data_param(source, "lmdb", 1))
    source = write_db(tmp_path / "short", {"a": good, "b": short})
    layer, top = build_layer("Data", data_param(source, "lmdb", 1))
    forward(layer, top)
    with pytest.raises(LayerError, match="record 'b' .* holds 3 uint8 data bytes but its shape .* needs 4"):
        forward(layer, top)


def test_mixed_sizes_within_a_batch(tmp_path) -> None:
    source = write_db(tmp_path / "db", {"a": make_datum(0, (1, 2, 2), 1), "b": make_datum(0, (1, 3, 3), 1)})
    layer, top = build_layer("Data", data_param(source, "lmdb", 2))
    with pytest.raises(LayerError, match="sizes may change only between batches"):
        forward(layer, top)


def test_mean_shape_mismatch_names_the_layer(tmp_path) -> None:
    from recaffe.io import prototxt

    proto = caffe_pb2.BlobProto(num=1, channels=2, height=3, width=3, data=[0.0] * 18)
    prototxt.write_binary(tmp_path / "mean.binaryproto", proto)
    source = fill_db(tmp_path / "db")
    layer, top = build_layer("Data", data_param(source, "lmdb") +
                             f' transform_param {{ mean_file: "{tmp_path / "mean.binaryproto"}" }}')
    with pytest.raises(LayerError, match=r"layer 'd' \(Data\): the mean_file .* has shape \(2, 3, 3\)"):
        forward(layer, top)


def test_bad_batch_size(tmp_path) -> None:
    source = fill_db(tmp_path / "db")
    with pytest.raises(LayerError, match="batch_size must be positive, got 0"):
        build_layer("Data", data_param(source, "lmdb", 0))


def test_prefetch_thread_stops_when_the_layer_goes(tmp_path) -> None:
    import gc

    source = fill_db(tmp_path / "db")
    layer, top = build_layer("Data", data_param(source, "lmdb"))
    thread = layer.prefetcher._thread
    assert thread.is_alive()
    del layer
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_in_a_net_with_a_relative_source(tmp_path, monkeypatch) -> None:
    import recaffe

    fill_db(tmp_path / "db", unique_pixels=True)
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "d" type: "Data" top: "data" top: "label" '
        'data_param { source: "db" backend: LMDB batch_size: 2 } transform_param { scale: 0.5 } }')
    monkeypatch.chdir(tmp_path)
    net = recaffe.Net("net.prototxt", recaffe.TEST)
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data.numpy()[1], 0.5 * np.arange(24).reshape(2, 3, 4))
    assert net.blobs["label"].data.tolist() == [0, 1]
