"""SegNet's DenseImageData: image/label pairs, resize (bilinear / nearest), mirror and crop from the
fork's stream (dense_image_data_layer.cpp), shuffle, errors."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch
from PIL import Image

from recaffe import forks, rng
from recaffe.blob import Blob
from recaffe.forks.segnet.dense_image_data import DenseImageDataLayer, resize_nearest
from recaffe.io import prototxt
from recaffe.layer import LayerError
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS

SEGNET = forks.get_dialect("segnet")


Pairs = tuple[pathlib.Path, list[np.ndarray], list[np.ndarray]]


def make_pairs(tmp_path: pathlib.Path, count: int = 3, size: tuple[int, int] = (6, 8)) -> Pairs:
    """``count`` RGB images with gray label images (class ids) and the list file naming them."""
    generator = np.random.default_rng(0)
    images, labels, lines = [], [], []
    for i in range(count):
        rgb = generator.integers(0, 256, (*size, 3), dtype=np.uint8)
        label = generator.integers(0, 12, size, dtype=np.uint8)
        Image.fromarray(rgb).save(tmp_path / f"img{i}.png")
        Image.fromarray(label).save(tmp_path / f"lab{i}.png")
        images.append(rgb[:, :, ::-1].transpose(2, 0, 1).astype(np.float32))  # BGR, CHW
        labels.append(label.astype(np.float32))
        lines.append(f"img{i}.png lab{i}.png")
    source = tmp_path / "list.txt"
    source.write_text("\n".join(lines) + "\n")
    return source, images, labels


def setup(tmp_path: pathlib.Path, fields: str, seed: int = 5,
          extra: str = "") -> tuple[DenseImageDataLayer, list[Blob]]:
    text = (f'name: "data" type: "DenseImageData" top: "data" top: "label" {extra} dense_image_data_param '
            f'{{ source: "{tmp_path / "list.txt"}" root_folder: "{tmp_path}/" {fields} }}')
    param = SEGNET.lower_layer(prototxt.parse_text(text, SEGNET.layer_parameter()))
    param.phase = caffe_pb2.TRAIN
    layer = DenseImageDataLayer(param)
    assert LAYERS.get("DenseImageData", "segnet") is DenseImageDataLayer
    top = [Blob(), Blob()]
    rng.set_random_seed(seed)
    layer.setup([], top)
    return layer, top


def test_pairs_in_order_with_labels_and_wrap(tmp_path: pathlib.Path) -> None:
    _, images, labels = make_pairs(tmp_path)
    layer, top = setup(tmp_path, "batch_size: 2", extra="transform_param { scale: 0.5 mean_value: 10 }")
    assert top[0].shape == (2, 3, 6, 8) and top[1].shape == (2, 1, 6, 8)
    seen = []
    for _ in range(2):
        layer.run_forward([], top)
        seen.append((top[0].data.clone(), top[1].data.clone()))
    order = [0, 1, 2, 0]
    for k, i in enumerate(order):
        data, label = seen[k // 2][0][k % 2], seen[k // 2][1][k % 2]
        torch.testing.assert_close(data, torch.from_numpy((images[i] - 10) * 0.5))
        torch.testing.assert_close(label[0], torch.from_numpy(labels[i]))  # pixel values, no scale or mean


def test_mirror_and_crop_draw_the_forks_words_and_keep_labels_aligned(tmp_path: pathlib.Path) -> None:
    _, images, labels = make_pairs(tmp_path)
    layer, top = setup(tmp_path, "batch_size: 3 mirror: true crop_height: 4 crop_width: 5", seed=11)
    assert rng.get_rng().rand() == rng.CaffeRNG(11).rand()  # setup drew no main-stream word
    layer.run_forward([], top)
    words = rng.CaffeRNG(11)  # the fork's thread draws on from the seeded main stream
    for i in range(3):
        mirror = words.rand() % 2
        h_off, w_off = words.rand() % 3, words.rand() % 4
        img, lab = images[i], labels[i][None]
        if mirror:
            img, lab = img[:, :, ::-1], lab[:, :, ::-1]
        window = (slice(None), slice(h_off, h_off + 4), slice(w_off, w_off + 5))
        torch.testing.assert_close(top[0].data[i], torch.from_numpy(img[window].copy()))
        torch.testing.assert_close(top[1].data[i], torch.from_numpy(lab[window].copy()))


def test_shuffle_and_skip_draw_at_setup_in_the_forks_order(tmp_path: pathlib.Path) -> None:
    _, images, _ = make_pairs(tmp_path, count=5)
    layer, top = setup(tmp_path, "batch_size: 5 shuffle: true rand_skip: 3", seed=4)
    words = rng.CaffeRNG(4)
    order = list(range(5))
    rng.CaffeRNG(words.rand()).shuffle(order)
    skip = words.rand() % 3
    layer.run_forward([], top)
    want = [order[(skip + k) % 5] for k in range(5)]
    got = [next(i for i in range(5) if torch.equal(top[0].data[k], torch.from_numpy(images[i])))
           for k in range(5)]
    assert got[: 5 - skip] == want[: 5 - skip]


def test_resize_is_bilinear_for_images_and_nearest_for_labels(tmp_path: pathlib.Path) -> None:
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless (the forks extra) is not installed")
    make_pairs(tmp_path, count=1, size=(7, 9))
    layer, top = setup(tmp_path, "batch_size: 1 new_height: 5 new_width: 13")
    layer.run_forward([], top)
    img = cv2.imread(str(tmp_path / "img0.png"), cv2.IMREAD_COLOR)
    lab = cv2.imread(str(tmp_path / "lab0.png"), cv2.IMREAD_GRAYSCALE)
    want = cv2.resize(img, (13, 5), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
    np.testing.assert_array_equal(top[0].data[0].numpy(), want)
    want_label = cv2.resize(lab, (13, 5), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(top[1].data[0, 0].numpy(), want_label)
    for h, w in [(3, 4), (16, 21), (7, 9), (2, 30)]:
        np.testing.assert_array_equal(resize_nearest(lab[:, :, None], h, w)[:, :, 0],
                                      cv2.resize(lab, (w, h), interpolation=cv2.INTER_NEAREST))


@pytest.mark.parametrize(
    ("fields", "extra", "message"),
    [
        ("batch_size: 1", "transform_param { mirror: true }", "transform_param.mirror and crop_size"),
        ("batch_size: 1 crop_height: 3", "", "crop_height and crop_width must be set together"),
        ("batch_size: 1 new_width: 3", "", "new_height and new_width must be set together"),
        ("batch_size: 0", "", "batch_size must be positive"),
        ("batch_size: 1 crop_height: 9 crop_width: 9", "", "smaller than the crop 9×9"),
    ],
)
def test_errors_name_the_layer_and_field(tmp_path: pathlib.Path, fields: str, extra: str,
                                        message: str) -> None:
    make_pairs(tmp_path)
    with pytest.raises(LayerError, match=message):
        setup(tmp_path, fields, extra=extra)


def test_bad_list_and_mismatched_label_are_errors(tmp_path: pathlib.Path) -> None:
    make_pairs(tmp_path)
    (tmp_path / "list.txt").write_text("img0.png lab0.png\nimg1.png\n")
    with pytest.raises(LayerError, match=r"list.txt:2: expected '<image path> <label image path>'"):
        setup(tmp_path, "batch_size: 1")
    Image.fromarray(np.zeros((3, 3), dtype=np.uint8)).save(tmp_path / "small.png")
    (tmp_path / "list.txt").write_text("img0.png small.png\n")
    with pytest.raises(LayerError, match="label image .*small.png' is 3×3 but its image"):
        setup(tmp_path, "batch_size: 1")


def test_resume_state_continues_order_mirror_and_crop(tmp_path: pathlib.Path) -> None:
    # exact resume (recaffe.resume): a layer loaded with another's state reads and draws on as it does
    make_pairs(tmp_path, count=3)
    fields = "batch_size: 2 shuffle: true mirror: true crop_height: 4 crop_width: 5"
    first, top = setup(tmp_path, fields, seed=8)
    first.run_forward([], top)
    state = caffe_pb2.RecaffeDataState()
    first.save_resume_state(state)
    second, top2 = setup(tmp_path, fields, seed=99)  # another run: other order and draws
    second.load_resume_state(state)
    for _ in range(3):  # across a wrap (3 pairs, 2 a batch) and its reshuffle
        first.run_forward([], top)
        second.run_forward([], top2)
        assert torch.equal(top[0].data, top2[0].data) and torch.equal(top[1].data, top2[1].data)
