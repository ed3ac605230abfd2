"""Decoding, colour conversion and OpenCV-like bilinear resizing (recaffe.data.image)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from recaffe.data import DataError, image
from tests.data.helpers import write_png


def test_resize_matches_opencv_values() -> None:
    # expected values produced by OpenCV's cv2.resize(img, (3, 3), interpolation=INTER_LINEAR)
    img = (np.arange(4 * 5 * 3).reshape(4, 5, 3) * 37 % 256).astype(np.uint8)
    want = [[[44, 81, 118], [186, 10, 47], [158, 167, 61]],
            [[102, 139, 133], [31, 68, 105], [130, 82, 119]],
            [[159, 125, 147], [88, 125, 162], [102, 139, 105]]]
    np.testing.assert_array_equal(image.resize_linear(img, 3, 3), want)
    gray = (np.arange(6 * 7).reshape(6, 7, 1) * 53 % 256).astype(np.uint8)
    want = [[39, 113, 124, 121, 80], [173, 94, 104, 178, 99],
            [115, 138, 213, 95, 118], [96, 119, 193, 75, 98]]
    np.testing.assert_array_equal(image.resize_linear(gray, 4, 5)[:, :, 0], want)


def test_resize_rows_past_the_border_keep_their_weights_as_opencv() -> None:
    # regression: OpenCV's vertical pass weighs the edge row twice (1 - f, f) and can round one
    # grey level lower than (1, 0); its horizontal pass uses (1, 0). Values from cv2.resize.
    img = np.array([[[13], [250]], [[201], [7]]], dtype=np.uint8)
    want = [[13, 72, 191, 250], [13, 72, 191, 250], [76, 99, 146, 169], [138, 126, 100, 88],
            [201, 153, 56, 7], [201, 152, 55, 7]]  # the last row: one lower than the one above
    np.testing.assert_array_equal(image.resize_linear(img, 6, 4)[:, :, 0], want)


def test_resize_equals_opencv_on_random_sizes() -> None:
    cv2 = pytest.importorskip("cv2")
    gen = np.random.default_rng(5)
    for _ in range(60):
        h, w, out_h, out_w = (int(v) for v in gen.integers(2, 40, 4))
        img = gen.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        want = cv2.resize(img, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(image.resize_linear(img, out_h, out_w), want,
                                      err_msg=f"{(h, w, out_h, out_w)}")


def test_resize_has_no_antialiasing_and_keeps_constants() -> None:
    stripes = np.zeros((1, 8, 1), dtype=np.uint8)
    stripes[0, 1::2] = 200
    # half-pixel centres: every output pixel lands between an even and an odd column
    assert (image.resize_linear(stripes, 1, 4) == 100).all()
    flat = np.full((5, 7, 3), 77, dtype=np.uint8)
    assert (image.resize_linear(flat, 11, 3) == 77).all()
    np.testing.assert_array_equal(image.resize_linear(stripes, 1, 8), stripes)


def test_read_image_colour_gray_and_resize(tmp_path) -> None:
    rgb = np.zeros((4, 6, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 10, 20, 30
    path = write_png(tmp_path / "a b.png", rgb)
    bgr = image.read_image(path)
    assert bgr.shape == (4, 6, 3) and bgr[0, 0].tolist() == [30, 20, 10]
    gray = image.read_image(path, is_color=False)
    assert gray.shape == (4, 6, 1) and gray[0, 0, 0] == (10 * 4899 + 20 * 9617 + 30 * 1868 + 8192) >> 14
    assert image.read_image(path, 2, 3).shape == (2, 3, 3)
    gray_file = write_png(tmp_path / "g.png", rgb[..., 0])
    assert image.read_image(gray_file, is_color=True)[0, 0].tolist() == [10] * 3


def test_png_to_gray_is_libpngs_conversion(tmp_path) -> None:
    """OpenCV's PNG reader lets libpng convert colour to grey: truncated 15-bit weights, one level
    below OpenCV's own rounding for (0, 0, 200); the SegNet fork's golden dense_image_data_gray
    case checks whole images."""
    rgb = np.zeros((1, 2, 3), dtype=np.uint8)
    rgb[0, 0] = (0, 0, 200)
    rgb[0, 1] = (90, 90, 90)
    gray = image.read_image(write_png(tmp_path / "c.png", rgb), is_color=False)
    assert gray[0, :, 0].tolist() == [(200 * 3737) >> 15, 90] == [22, 90]
    assert (200 * 1868 + 8192) >> 14 == 23  # what cv::cvtColor would give


def test_native_decoding_keeps_channels(tmp_path) -> None:
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 128
    data = (tmp_path / "x.png")
    Image.fromarray(rgba).save(data)
    out = image.decode_image(data.read_bytes(), "native")
    assert out.shape == (2, 2, 4) and out[0, 0].tolist() == [0, 0, 255, 128]


def test_encode_round_trip() -> None:
    img = np.random.RandomState(0).randint(0, 256, size=(5, 4, 3)).astype(np.uint8)
    np.testing.assert_array_equal(image.decode_image(image.encode_image(img, "png"), "color"), img)
    assert image.decode_image(image.encode_image(img, "jpg"), "color").shape == img.shape
    with pytest.raises(DataError, match="cannot encode images as 'gif2'"):
        image.encode_image(img, "gif2")


def test_unreadable_images(tmp_path) -> None:
    with pytest.raises(DataError, match="could not open or find the image '.*missing.png'"):
        image.read_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="could not read the image '.*bad.png'"):
        image.read_image(tmp_path / "bad.png")
    Image.fromarray(np.zeros((2, 2), dtype=np.uint16)).save(tmp_path / "deep.png")
    with pytest.raises(DataError, match="8-bit"):
        image.read_image(tmp_path / "deep.png")
