"""caffe.io: proto and datum conversions, the Transformer's order of operations, image loading,
resizing and oversampling."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from caffe import io
from caffe.proto import caffe_pb2


# ------------------------------------------------------------------ protos and datums
def test_blobproto_shapes() -> None:
    legacy = caffe_pb2.BlobProto(num=1, channels=2, height=1, width=3, data=range(6))
    assert io.blobproto_to_array(legacy).shape == (1, 2, 1, 3)
    shaped = caffe_pb2.BlobProto(data=range(6))
    shaped.shape.dim.extend([3, 2])
    np.testing.assert_array_equal(io.blobproto_to_array(shaped), np.arange(6).reshape(3, 2))
    scalar = io.blobproto_to_array(caffe_pb2.BlobProto(data=[123]))
    assert scalar.shape == () and scalar == 123
    with pytest.raises(ValueError):
        io.blobproto_to_array(caffe_pb2.BlobProto(data=range(6)))  # no shape, six values


def test_blobproto_round_trip_with_diff() -> None:
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    blob = io.array_to_blobproto(data, diff=-data)
    assert list(blob.shape.dim) == [2, 3, 4] and not blob.HasField("num")
    np.testing.assert_array_equal(io.blobproto_to_array(blob), data)
    np.testing.assert_array_equal(io.blobproto_to_array(blob, return_diff=True), -data)
    doubles = caffe_pb2.BlobProto(double_data=[0.1, 0.2])
    doubles.shape.dim.append(2)
    np.testing.assert_array_equal(io.blobproto_to_array(doubles), [0.1, 0.2])


def test_blobprotovector_round_trip() -> None:
    arrays = [np.ones((2, 2)), np.arange(3.0)]
    serialized = io.arraylist_to_blobprotovector_str(arrays)
    assert isinstance(serialized, bytes)
    for got, want in zip(io.blobprotovector_str_to_arraylist(serialized), arrays):
        np.testing.assert_array_equal(got, want)


def test_datums() -> None:
    raw = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    datum = io.array_to_datum(raw, label=3)
    assert (datum.channels, datum.height, datum.width, datum.label) == (2, 3, 4, 3)
    assert datum.data == raw.tobytes() and not datum.float_data
    back = io.datum_to_array(datum)
    np.testing.assert_array_equal(back, raw)
    back[0, 0, 0] = 9  # a writable copy
    floats = io.array_to_datum(raw.astype(np.float32) / 2)
    assert not floats.data and not floats.HasField("label")
    np.testing.assert_array_equal(io.datum_to_array(floats), raw / 2)
    assert len(io.array_to_datum(np.ones((2, 2, 2)), 1).SerializeToString()) > len(
        io.array_to_datum(np.ones((2, 2, 2))).SerializeToString())
    with pytest.raises(ValueError, match="Incorrect array shape"):
        io.array_to_datum(np.ones((2, 2)))


# ------------------------------------------------------------------ Transformer
def test_preprocess_order_and_deprocess() -> None:
    t = io.Transformer({"data": (1, 3, 2, 2)})
    t.set_transpose("data", (2, 0, 1))
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255.0)
    t.set_mean("data", np.array([10.0, 20.0, 30.0]))
    t.set_input_scale("data", 0.5)
    image = np.random.default_rng(0).uniform(size=(2, 2, 3)).astype(np.float32)
    out = t.preprocess("data", image)
    want = (image.transpose(2, 0, 1)[[2, 1, 0]] * 255.0 - np.array([10.0, 20.0, 30.0])[:, None, None]) * 0.5
    assert out.dtype == np.float32 and out.shape == (3, 2, 2)
    np.testing.assert_allclose(out, want, rtol=1e-5)
    np.testing.assert_allclose(t.deprocess("data", out[np.newaxis]), image, rtol=1e-5, atol=1e-6)
    before = image.copy()
    t.preprocess("data", image)
    np.testing.assert_array_equal(image, before)  # the caller's array is left alone


def test_preprocess_resizes_to_the_input_size() -> None:
    t = io.Transformer({"data": (1, 1, 4, 6)})
    t.set_transpose("data", (2, 0, 1))
    out = t.preprocess("data", np.full((2, 3, 1), 0.25))
    assert out.shape == (1, 4, 6) and np.allclose(out, 0.25)


def test_transformer_errors_and_mean_shapes() -> None:
    t = io.Transformer({"data": [1, 3, 4, 4]})
    with pytest.raises(Exception, match="not one of the net inputs"):
        t.set_raw_scale("other", 1.0)
    with pytest.raises(Exception, match="Transpose order"):
        t.set_transpose("data", (1, 0))
    with pytest.raises(Exception, match="Channel swap"):
        t.set_channel_swap("data", (1, 0))
    with pytest.raises(ValueError, match="Mean channels"):
        t.set_mean("data", np.zeros(2))
    with pytest.raises(ValueError, match="Mean shape invalid"):
        t.set_mean("data", np.zeros((1, 3, 4, 4)))
    t.set_mean("data", np.ones((3, 4, 4)))
    assert t.mean["data"].shape == (3, 4, 4)
    ramp = np.broadcast_to(np.linspace(0, 1, 8), (3, 8, 8)).copy()
    t.set_mean("data", ramp)  # a mean of another size is resized
    assert t.mean["data"].shape == (3, 4, 4)
    assert t.mean["data"].min() >= 0 and t.mean["data"].max() <= 1
    t.set_mean("data", np.full((3, 2, 2), 7.0))
    assert np.allclose(t.mean["data"], 7.0)


# ------------------------------------------------------------------ images
@pytest.mark.parametrize(("mode", "color", "shape"), [
    ("RGB", True, (3, 4, 3)), ("RGB", False, (3, 4, 1)), ("RGBA", True, (3, 4, 3)),
    ("L", True, (3, 4, 3)), ("L", False, (3, 4, 1)), ("P", True, (3, 4, 3)), ("I;16", False, (3, 4, 1)),
])
def test_load_image(tmp_path, mode, color, shape) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
    image = Image.fromarray(rgb, "RGB")
    if mode == "RGBA":
        image = image.convert("RGBA")
    elif mode == "I;16":
        image = Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257)
    elif mode != "RGB":
        image = image.convert(mode)
    path = tmp_path / "im.png"
    image.save(path)
    loaded = io.load_image(str(path), color=color)
    assert loaded.shape == shape and loaded.dtype == np.float32
    assert loaded.min() >= 0 and loaded.max() <= 1
    if mode in ("RGB", "RGBA") and color:
        np.testing.assert_allclose(loaded, rgb / 255.0, atol=1e-6)
    if mode == "RGB" and not color:
        grey = rgb @ np.array([0.2125, 0.7154, 0.0721]) / 255.0
        np.testing.assert_allclose(loaded[:, :, 0], grey, atol=1e-6)
    if mode == "L" and color:
        assert (loaded[:, :, 0] == loaded[:, :, 2]).all()
    if mode == "I;16":
        np.testing.assert_allclose(loaded[:, :, 0], rgb[:, :, 0] / 255.0, atol=1e-6)


def test_resize_image_bilinear_and_nearest() -> None:
    ramp = np.arange(4, dtype=np.float32).reshape(1, 4, 1)
    up = io.resize_image(ramp, (1, 8))
    np.testing.assert_allclose(up[0, :, 0], [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3])
    down = io.resize_image(np.arange(8, dtype=np.float32).reshape(1, 8, 1), (1, 4))
    np.testing.assert_allclose(down[0, :, 0], [0.5, 2.5, 4.5, 6.5])
    nearest = io.resize_image(ramp, (1, 8), interp_order=0)
    np.testing.assert_array_equal(nearest[0, :, 0], [0, 0, 1, 1, 2, 2, 3, 3])
    five = np.random.default_rng(2).uniform(size=(6, 5, 5))
    assert io.resize_image(five, (3, 10)).shape == (3, 10, 5)
    assert io.resize_image(five, (3, 10)).dtype == np.float32
    np.testing.assert_allclose(io.resize_image(np.full((3, 3, 3), 2.0), (7, 2)), 2.0)
    with pytest.raises(ValueError, match="interp_order"):
        io.resize_image(ramp, (2, 2), interp_order=3)


def test_oversample_ten_crops() -> None:
    image = np.arange(5 * 6 * 2, dtype=np.float32).reshape(5, 6, 2)
    crops = io.oversample([image, image + 100], (3, 4))
    assert crops.shape == (20, 3, 4, 2)
    np.testing.assert_array_equal(crops[0], image[0:3, 0:4])
    np.testing.assert_array_equal(crops[1], image[0:3, 2:6])
    np.testing.assert_array_equal(crops[2], image[2:5, 0:4])
    np.testing.assert_array_equal(crops[3], image[2:5, 2:6])
    np.testing.assert_array_equal(crops[4], image[1:4, 1:5])  # centre 2.5±1.5, 3±2, truncated
    np.testing.assert_array_equal(crops[5:10], crops[0:5, :, ::-1])
    np.testing.assert_array_equal(crops[10], image[0:3, 0:4] + 100)
