"""ImageData, after Caffe's test_image_data_layer: read, resize, reshape, shuffle, spaces, errors."""

from __future__ import annotations

import numpy as np
import pytest

from recaffe import rng
from recaffe.layer import LayerError
from tests.data.helpers import build_layer, forward, write_png

CAT = np.random.RandomState(0).randint(0, 256, size=(6, 8, 3)).astype(np.uint8)  # RGB
FISH = np.random.RandomState(1).randint(0, 256, size=(5, 9, 3)).astype(np.uint8)


@pytest.fixture
def images(tmp_path) -> dict[str, str]:
    write_png(tmp_path / "cat.png", CAT)
    write_png(tmp_path / "fish-bike.png", FISH)
    write_png(tmp_path / "cat gray.png", CAT[:, :, 0])
    lists = {
        "five": "".join(f"{tmp_path / 'cat.png'} {i}\n" for i in range(5)),
        "reshape": f"{tmp_path / 'cat.png'} 0\n{tmp_path / 'fish-bike.png'} 1\n",
        "space": f"{tmp_path / 'cat.png'} 0\n{tmp_path / 'cat gray.png'} 1\n",
        "rooted": "cat.png 0\nfish-bike.png 1\ncat gray.png 2\n",
    }
    for name, text in lists.items():
        (tmp_path / f"{name}.txt").write_text(text)
    return {name: str(tmp_path / f"{name}.txt") for name in lists} | {"root": f"{tmp_path}/"}


def image_layer(source: str, extra: str = "", batch_size: int = 5, transform: str = ""):
    snippet = f'image_data_param {{ source: "{source}" batch_size: {batch_size} {extra} }} '
    return build_layer("ImageData", snippet + f"transform_param {{ {transform} }}")


def test_read(images) -> None:
    layer, top = image_layer(images["five"])
    assert top[0].shape == (5, 3, 6, 8) and top[1].shape == (5,)
    for _ in range(2):
        data, label = forward(layer, top)
        assert label.tolist() == [0, 1, 2, 3, 4]
        np.testing.assert_array_equal(data[3], CAT[:, :, ::-1].transpose(2, 0, 1))  # BGR, CHW


def test_resize(images) -> None:
    layer, top = image_layer(images["five"], "new_height: 4 new_width: 5")
    assert top[0].shape == (5, 3, 4, 5)
    assert forward(layer, top)[0].shape == (5, 3, 4, 5)


def test_reshape_follows_each_image(images) -> None:
    layer, top = image_layer(images["reshape"], batch_size=1)
    assert top[1].shape == (1,)
    assert forward(layer, top)[0].shape == (1, 3, 6, 8)
    assert forward(layer, top)[0].shape == (1, 3, 5, 9)


def test_shuffle(images) -> None:
    rng.set_random_seed(1701)
    layer, top = image_layer(images["five"], "shuffle: true")
    engine = rng.CaffeRNG(rng.CaffeRNG(1701).take(1)[0])  # no InitRand word: nothing random to transform
    order = list(range(5))
    for _ in range(3):
        engine.shuffle(order)
        labels = forward(layer, top)[1].tolist()
        assert labels == order and sorted(labels) == [0, 1, 2, 3, 4]


def test_space_in_file_names_and_gray_read_as_colour(images) -> None:
    layer, top = image_layer(images["space"], batch_size=1)
    data, label = forward(layer, top)
    assert data.shape == (1, 3, 6, 8) and label[0] == 0
    data, label = forward(layer, top)
    assert data.shape == (1, 3, 6, 8) and label[0] == 1
    assert (data[0, 0] == data[0, 2]).all() and (data[0, 0] == CAT[:, :, 0]).all()


def test_root_folder_gray_and_rand_skip(images) -> None:
    rng.set_random_seed(8)
    options = f'root_folder: "{images["root"]}" is_color: false rand_skip: 3'
    layer, top = image_layer(images["rooted"], options, batch_size=1)
    skip = rng.CaffeRNG(8).take(1)[0] % 3
    data, label = forward(layer, top)
    assert data.shape[1] == 1 and label[0] == skip


def test_transform_and_draws(images) -> None:
    rng.set_random_seed(2)
    layer, top = image_layer(images["five"], "shuffle: true", transform="crop_size: 4 mirror: true")
    words = rng.CaffeRNG(2).take(4)  # InitRand, shuffle seed, InitRand (used), thread
    assert rng.get_rng().rand() == rng.CaffeRNG(2).take(5)[4]
    engine = rng.CaffeRNG(words[2])
    data = forward(layer, top)[0]
    bgr = CAT[:, :, ::-1].transpose(2, 0, 1).astype(np.float32)
    for item in range(5):
        mirror, h, w = engine.rand() % 2, engine.rand() % 3, engine.rand() % 5
        want = bgr[:, h : h + 4, w : w + 4]
        np.testing.assert_array_equal(data[item], want[:, :, ::-1] if mirror else want)


def test_errors(images, tmp_path) -> None:
    with pytest.raises(LayerError, match="new_height and new_width must be set together"):
        image_layer(images["five"], "new_height: 4")
    with pytest.raises(LayerError, match="cannot open the image list 'nope.txt'"):
        image_layer("nope.txt")
    (tmp_path / "bad.txt").write_text(f"{tmp_path / 'cat.png'} 0\nno_label_here\n")
    with pytest.raises(LayerError, match=r"bad.txt:2: expected '<image path> <integer label>'"):
        image_layer(str(tmp_path / "bad.txt"))
    (tmp_path / "missing.txt").write_text(f"{tmp_path / 'cat.png'} 0\n{tmp_path / 'gone.png'} 1\n")
    layer, top = image_layer(str(tmp_path / "missing.txt"), batch_size=1)
    forward(layer, top)
    message = r"layer 'd' \(ImageData\): could not open or find the image '.*gone.png'"
    with pytest.raises(LayerError, match=message):
        forward(layer, top)
