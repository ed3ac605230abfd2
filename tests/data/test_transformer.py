"""DataTransformer, after Caffe's test_data_transformer, plus exact values and the draw order."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from recaffe import rng
from recaffe.data import DataError
from recaffe.data.transformer import DataTransformer
from recaffe.io import blobproto, prototxt
from recaffe.proto import caffe_pb2
from tests.data.helpers import make_datum

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST
SEED, ITERS = 1701, 10
SHAPE = (3, 4, 5)


def params(**fields) -> caffe_pb2.TransformationParameter:
    return caffe_pb2.TransformationParameter(**fields)


def datum(unique: bool, label: int = 0) -> caffe_pb2.Datum:
    return make_datum(label, SHAPE, np.arange(60).reshape(SHAPE) if unique else label)


def transformer(param, phase, seed: int = SEED) -> DataTransformer:
    t = DataTransformer(param, phase)
    rng.set_random_seed(seed)
    t.init_rand()
    return t


def sequence_matches(param, phase) -> int:
    """Caffe's NumSequenceMatches: transform 10 times, then 10 more, count equal values."""
    t, item = transformer(param, phase), datum(unique=True)
    first = [t.transform_datum(item) for _ in range(ITERS)]
    return sum(int((a == t.transform_datum(item)).sum()) for a in first)


def test_empty_transform_copies_values() -> None:
    out = transformer(params(), TEST).transform_datum(datum(unique=False, label=0))
    assert out.shape == SHAPE and out.dtype == np.float32 and not out.any()
    out = transformer(params(), TEST).transform_datum(datum(unique=True))
    np.testing.assert_array_equal(out.reshape(-1), np.arange(60))


def test_crop_size_gives_the_crop_shape() -> None:
    t = transformer(params(crop_size=2), TEST)
    for _ in range(ITERS):
        out = t.transform_datum(datum(unique=False, label=0))
        assert out.shape == (3, 2, 2) and not out.any()


@pytest.mark.parametrize(("fields", "phase", "all_match"), [
    ({"crop_size": 2}, TRAIN, False),
    ({"crop_size": 2}, TEST, True),
    ({"mirror": True}, TRAIN, False),
    ({"mirror": True}, TEST, False),  # mirroring is random in TEST too
])
def test_random_sequences(fields, phase, all_match) -> None:
    size = 3 * (2 * 2 if "crop_size" in fields else 20)
    matches = sequence_matches(params(**fields), phase)
    assert (matches == size * ITERS) == all_match


@pytest.mark.parametrize("phase", [TRAIN, TEST])
def test_crop_and_mirror_vary_more_than_crop(phase) -> None:
    crop = sequence_matches(params(crop_size=2), phase)
    both = sequence_matches(params(crop_size=2, mirror=True), phase)
    assert both <= crop if phase == TRAIN else both < crop


def test_draw_order_mirror_then_crop_offsets() -> None:
    t = transformer(params(crop_size=2, mirror=True), TRAIN, seed=5)
    main = rng.CaffeRNG(5)
    words = rng.CaffeRNG(main.rand())  # the transformer's engine: one word of the main stream
    x = np.arange(60, dtype=np.uint8).reshape(SHAPE)
    for _ in range(6):
        mirror, h_off, w_off = words.rand() % 2, words.rand() % 3, words.rand() % 4
        want = x[:, h_off : h_off + 2, w_off : w_off + 2].astype(np.float32)
        want = want[:, :, ::-1] if mirror else want
        np.testing.assert_array_equal(t.transform(x), want)


def test_test_phase_crop_is_centred() -> None:
    x = np.arange(60, dtype=np.uint8).reshape(SHAPE)
    out = transformer(params(crop_size=2), TEST).transform(x)
    np.testing.assert_array_equal(out, x[:, 1:3, 1:3])


def test_init_rand_draws_one_word_only_when_needed() -> None:
    for fields, phase, words in [({}, TRAIN, 0), ({"crop_size": 2}, TEST, 0), ({"crop_size": 2}, TRAIN, 1),
                                 ({"mirror": True}, TEST, 1)]:
        t = transformer(params(**fields), phase, seed=3)
        assert rng.get_rng().rand() == rng.CaffeRNG(3).take(words + 1)[-1]
        assert (t.rng is not None) == bool(words)


def test_mean_value_and_mean_values() -> None:
    out = transformer(params(mean_value=[2]), TEST).transform_datum(datum(unique=False))
    assert (out == -2).all()
    out = transformer(params(mean_value=[0, 1, 2]), TEST).transform_datum(datum(unique=False))
    np.testing.assert_array_equal(out[:, 0, 0], [0, -1, -2])
    with pytest.raises(DataError, match="either 1 mean_value or as many as channels"):
        transformer(params(mean_value=[1, 2]), TEST).transform_datum(datum(unique=False))


def write_mean(tmp_path, values: np.ndarray) -> str:
    c, h, w = values.shape
    proto = caffe_pb2.BlobProto(num=1, channels=c, height=h, width=w)
    proto.data.extend(values.reshape(-1).tolist())
    path = str(tmp_path / "mean.binaryproto")
    prototxt.write_binary(path, proto)
    return path


def test_mean_file_is_subtracted_at_the_crop(tmp_path) -> None:
    mean = write_mean(tmp_path, np.arange(60, dtype=np.float32).reshape(SHAPE))
    out = transformer(params(mean_file=mean), TEST).transform_datum(datum(unique=True))
    assert not out.any()
    out = transformer(params(mean_file=mean, crop_size=2), TEST).transform_datum(datum(unique=True))
    assert out.shape == (3, 2, 2) and not out.any()


def test_mean_is_subtracted_before_scaling() -> None:
    f32 = np.float32
    out = transformer(params(mean_value=[0.1], scale=0.1), TEST).transform(np.ones((1, 1, 1), np.uint8))
    assert out[0, 0, 0] == (f32(1) - f32(0.1)) * f32(0.1)  # 0.089999996; scaling first gives 0.09
    assert out[0, 0, 0] != f32(1) * f32(0.1) - f32(0.1) * f32(0.1)


def test_float_data_is_used_when_data_is_empty() -> None:
    item = caffe_pb2.Datum(channels=1, height=1, width=2, float_data=[0.5, -1.5])
    np.testing.assert_array_equal(transformer(params(scale=2), TEST).transform_datum(item), [[[1, -3]]])


def test_double_dtype() -> None:
    t = DataTransformer(params(scale=0.1), TEST, dtype=np.float64)
    out = t.transform(np.full((1, 1, 1), 3, dtype=np.uint8))
    assert out.dtype == np.float64 and out[0, 0, 0] == 3 * float(np.float32(0.1))


def test_encoded_datums_decode_to_bgr() -> None:
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # red
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    item = caffe_pb2.Datum(data=buffer.getvalue(), encoded=True)
    out = transformer(params(), TEST).transform_datum(item)
    assert out.shape == (3, 2, 3) and (out[2] == 200).all() and not out[:2].any()
    gray = transformer(params(force_gray=True), TEST).transform_datum(item)
    assert gray.shape == (1, 2, 3) and (gray == (200 * 9797) >> 15).all()  # cv::imdecode: libpng's grey


def test_errors() -> None:
    with pytest.raises(DataError, match="mean_file and mean_value"):
        DataTransformer(params(mean_file="m", mean_value=[1]), TEST)
    with pytest.raises(DataError, match="force_color and force_gray"):
        DataTransformer(params(force_color=True, force_gray=True), TEST)
    with pytest.raises(DataError, match="cannot read the mean_file 'missing.binaryproto'"):
        DataTransformer(params(mean_file="missing.binaryproto"), TEST)
    with pytest.raises(DataError, match="smaller than crop_size 7"):
        transformer(params(crop_size=7), TEST).transform_datum(datum(unique=True))


def test_mismatched_mean_shape(tmp_path) -> None:
    mean = write_mean(tmp_path, np.zeros((3, 4, 4), dtype=np.float32))
    with pytest.raises(DataError, match=r"has shape \(3, 4, 4\) but the item has shape \(3, 4, 5\)"):
        transformer(params(mean_file=mean), TEST).transform_datum(datum(unique=True))


def test_mean_file_reads_through_blobproto(tmp_path) -> None:
    values = np.arange(60, dtype=np.float32).reshape(SHAPE)
    path = write_mean(tmp_path, values)
    proto = prototxt.read_binary(path, caffe_pb2.BlobProto())
    np.testing.assert_array_equal(blobproto.array_from_proto(proto)[0], DataTransformer(
        params(mean_file=path), TEST).mean)
