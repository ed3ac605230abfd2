"""MemoryData, after Caffe's test_memory_data_layer: reset, cycling, datum/mat vectors, batch size."""

from __future__ import annotations

import numpy as np
import pytest

from recaffe import rng
from recaffe.layer import LayerError
from recaffe.proto import caffe_pb2
from tests.data.helpers import build_layer, forward

BATCH, BATCHES, SHAPE = 8, 12, (4, 7, 11)
PARAM = "memory_data_param { batch_size: 8 channels: 4 height: 7 width: 11 }"


def test_setup_shapes() -> None:
    _, top = build_layer("MemoryData", PARAM)
    assert top[0].shape == (BATCH, *SHAPE) and top[1].shape == (BATCH,)


def test_forward_cycles_through_reset_data() -> None:
    data = np.random.RandomState(0).randn(BATCHES * BATCH, *SHAPE).astype(np.float32)
    labels = np.random.RandomState(1).randn(BATCHES * BATCH).astype(np.float32)
    layer, top = build_layer("MemoryData", PARAM)
    layer.reset(data, labels, len(data))
    for i in range(BATCHES * 2):
        got_data, got_labels = forward(layer, top)
        batch = slice((i % BATCHES) * BATCH, (i % BATCHES + 1) * BATCH)
        np.testing.assert_array_equal(got_data, data[batch])
        assert top[1].shape == (BATCH, 1, 1, 1)
        np.testing.assert_array_equal(got_labels.reshape(-1), labels[batch])


def test_reset_keeps_a_reference() -> None:
    data, labels = np.zeros((BATCH, *SHAPE), np.float32), np.zeros(BATCH, np.float32)
    layer, top = build_layer("MemoryData", PARAM)
    layer.reset(data, labels, BATCH)
    data[0] = 3
    assert (forward(layer, top)[0][0] == 3).all()


def datums(count: int) -> list[caffe_pb2.Datum]:
    pixels = np.arange(count * int(np.prod(SHAPE))) % 256
    return [caffe_pb2.Datum(channels=4, height=7, width=11, label=i,
                            data=pixels[i * 308 : (i + 1) * 308].astype(np.uint8).tobytes())
            for i in range(count)]


def test_add_datum_vector_default_transform() -> None:
    layer, top = build_layer("MemoryData", PARAM)
    items = datums(BATCH * 5)
    layer.add_datum_vector(items)
    for it in range(5):
        data, labels = forward(layer, top)
        for i in range(BATCH):
            d = items[it * BATCH + i]
            assert labels.reshape(-1)[i] == d.label
            np.testing.assert_array_equal(data[i].reshape(-1), np.frombuffer(d.data, np.uint8))


def mats(count: int, seed: int) -> list[np.ndarray]:
    return list(np.random.RandomState(seed).randint(0, 256, size=(count, 7, 11, 4)).astype(np.uint8))


def check_mats(layer, top, images, batch) -> None:
    for it in range(len(images) // batch):
        data, labels = forward(layer, top)
        assert top[0].shape[0] == batch
        for i in range(batch):
            assert labels.reshape(-1)[i] == it * batch + i
            np.testing.assert_array_equal(data[i], images[it * batch + i].transpose(2, 0, 1))


def test_add_mat_vector_and_set_batch_size() -> None:
    layer, top = build_layer("MemoryData", PARAM)
    images = mats(BATCH * 5, 0)
    layer.add_mat_vector(images, list(range(len(images))))
    with pytest.raises(LayerError, match="until the current data has been consumed"):
        layer.set_batch_size(16)
    check_mats(layer, top, images, BATCH)
    layer.set_batch_size(16)
    images = mats(16 * 5, 1)
    layer.add_mat_vector(images, list(range(len(images))))
    check_mats(layer, top, images, 16)


def test_transform_applies_to_added_data_only() -> None:
    rng.set_random_seed(3)
    layer, top = build_layer("MemoryData", PARAM + " transform_param { scale: 2 }")
    layer.add_datum_vector(datums(BATCH))
    np.testing.assert_array_equal(forward(layer, top)[0][1].reshape(-1),
                                  2.0 * np.frombuffer(datums(BATCH)[1].data, np.uint8))
    layer.reset(np.ones((BATCH, *SHAPE), np.float32), np.zeros(BATCH, np.float32), BATCH)
    assert (forward(layer, top)[0] == 1).all()


def test_setup_draws_one_word_for_a_random_transform() -> None:
    rng.set_random_seed(5)
    build_layer("MemoryData", PARAM + " transform_param { mirror: true }")
    assert rng.get_rng().rand() == rng.CaffeRNG(5).take(2)[1]


def test_errors() -> None:
    layer, top = build_layer("MemoryData", PARAM)
    with pytest.raises(LayerError, match="call reset"):
        layer.run_forward([], top)
    with pytest.raises(LayerError, match="positive multiple of the batch size 8, got 12"):
        layer.reset(np.zeros((12, *SHAPE), np.float32), np.zeros(12, np.float32), 12)
    with pytest.raises(LayerError, match="at least 2464 values"):
        layer.reset(np.zeros((4, *SHAPE), np.float32), np.zeros(8, np.float32), 8)
    with pytest.raises(LayerError, match="must be a positive multiple"):
        layer.add_datum_vector(datums(3))
    with pytest.raises(LayerError, match=r"transforms to shape \(4, 7, 10\)"):
        layer.add_mat_vector(list(np.zeros((8, 7, 10, 4), np.uint8)), list(range(8)))
    with pytest.raises(LayerError, match="must be specified and positive"):
        build_layer("MemoryData", "memory_data_param { batch_size: 8 channels: 4 height: 7 }")
