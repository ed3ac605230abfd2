"""WindowData: the window file, fg/bg sampling from its own engine, warping with context, errors."""

from __future__ import annotations

import numpy as np
import pytest

from recaffe import rng
from recaffe.data import image
from recaffe.layer import LayerError
from tests.data.helpers import build_layer, forward, write_png

IMAGES = [np.random.RandomState(i).randint(0, 256, size=(10, 10, 3)).astype(np.uint8) for i in range(2)]
WINDOWS = [  # (image, class, overlap, x1, y1, x2, y2)
    (0, 3, 0.9, 0, 0, 9, 9), (0, 1, 0.1, 2, 2, 5, 6), (1, 2, 0.6, 1, 0, 8, 9),
    (1, 4, 0.3, 0, 0, 4, 4), (1, 5, 0.45, 3, 3, 9, 9),  # 0.45: neither fg nor bg at thresholds .5/.4
]


@pytest.fixture
def window_file(tmp_path) -> str:
    lines = []
    for i, pixels in enumerate(IMAGES):
        write_png(tmp_path / f"img{i}.png", pixels)
        rows = [w for w in WINDOWS if w[0] == i]
        lines += [f"# {i}", f"img{i}.png", "3 10 10", str(len(rows))]
        lines += [" ".join(str(v) for v in w[1:]) for w in rows]
    (tmp_path / "windows.txt").write_text("\n".join(lines) + "\n")
    return str(tmp_path / "windows.txt")


def window_layer(source: str, root: str, extra: str = "", transform: str = "crop_size: 10"):
    snippet = (f'window_data_param {{ source: "{source}" root_folder: "{root}/" batch_size: 8 '
               f"bg_threshold: 0.4 {extra} }} transform_param {{ {transform} }}")
    return build_layer("WindowData", snippet)


def bgr(pixels: np.ndarray) -> np.ndarray:
    return pixels[:, :, ::-1].transpose(2, 0, 1).astype(np.float32)


def test_sampling_order_and_warp(window_file, tmp_path) -> None:
    rng.set_random_seed(6)
    layer, top = window_layer(window_file, str(tmp_path), "scale: 0.5", "crop_size: 10 mirror: true")
    assert top[0].shape == (8, 3, 10, 10) and top[1].shape == (8,)
    engine = rng.CaffeRNG(rng.CaffeRNG(6).take(2)[1])  # after the InitRand word
    fg = [w for w in WINDOWS if w[2] >= 0.5]
    bg = [w for w in WINDOWS if w[2] < 0.4]
    for _ in range(2):
        data, label = forward(layer, top)
        for item in range(8):  # 8 - int(8 * 0.25) = 6 background windows first, then 2 foreground
            pool = bg if item < 6 else fg
            window = pool[engine.rand() % len(pool)]
            mirror = engine.rand() % 2
            assert label[item] == (window[1] if item >= 6 else 0)
            _, _, _, x1, y1, x2, y2 = window
            want = bgr(image.resize_linear(IMAGES[window[0]][y1 : y2 + 1, x1 : x2 + 1], 10, 10))
            want = want[:, :, ::-1] if mirror else want
            np.testing.assert_array_equal(data[item], 0.5 * want)


def test_context_padding_leaves_zeros(window_file, tmp_path) -> None:
    # only window (0, 0, 9, 9) is foreground at fg_threshold 0.8; fg_fraction 1 samples only it
    layer, top = window_layer(window_file, str(tmp_path), "fg_threshold: 0.8 fg_fraction: 1 context_pad: 2 "
                              "cache_images: true", "crop_size: 10 mean_value: 1")
    data = forward(layer, top)[0]
    # grown to (-3, -3, 13, 13), clipped to the image: a 6x6 warp placed at (2, 2)
    want = np.zeros((3, 10, 10), np.float32)
    want[:, 2:8, 2:8] = bgr(image.resize_linear(IMAGES[0], 6, 6)) - 1
    np.testing.assert_array_equal(data[0], want)


def test_square_mode_shapes(window_file, tmp_path) -> None:
    layer, top = window_layer(window_file, str(tmp_path), 'crop_mode: "square"', "crop_size: 6")
    data, label = forward(layer, top)
    assert data.shape == (8, 3, 6, 6) and (label[:6] == 0).all() and (label[6:] > 0).all()


def test_errors(window_file, tmp_path) -> None:
    with pytest.raises(LayerError, match="needs transform_param.crop_size > 0"):
        window_layer(window_file, str(tmp_path), transform="")
    with pytest.raises(LayerError, match="needs foreground and background windows, got 0 and 2"):
        window_layer(window_file, str(tmp_path), "fg_threshold: 0.95")
    (tmp_path / "bad.txt").write_text("# 0\nimg0.png\n3 10\n")
    with pytest.raises(LayerError, match="malformed window file"):
        window_layer(str(tmp_path / "bad.txt"), str(tmp_path))
    layer, top = window_layer(window_file, str(tmp_path / "elsewhere"))
    with pytest.raises(LayerError, match=r"layer 'd' \(WindowData\): could not open or find the image"):
        forward(layer, top)


def test_mean_values_must_fit_the_channels(window_file, tmp_path) -> None:
    with pytest.raises(LayerError, match=r"layer 'd' \(WindowData\): specify either 1 mean_value or as "
                                         r"many as channels \(3\), got 2"):
        window_layer(window_file, str(tmp_path), transform="crop_size: 10 mean_value: 1 mean_value: 2")


def test_resume_state_continues_the_sampling(window_file, tmp_path) -> None:
    # exact resume (recaffe.resume): a second layer loaded with the first one's state samples on as it does
    from recaffe.proto import caffe_pb2

    rng.set_random_seed(6)
    first, top = window_layer(window_file, str(tmp_path), "", "crop_size: 10 mirror: true")
    forward(first, top)
    state = caffe_pb2.RecaffeDataState()
    first.save_resume_state(state)
    rng.set_random_seed(99)  # a different run: its own sampling engine
    second, top2 = window_layer(window_file, str(tmp_path), "", "crop_size: 10 mirror: true")
    second.load_resume_state(state)
    for _ in range(3):
        forward(first, top)
        forward(second, top2)
        assert np.array_equal(top[0].data.numpy(), top2[0].data.numpy())
        assert np.array_equal(top[1].data.numpy(), top2[1].data.numpy())
