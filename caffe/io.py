"""pycaffe's ``caffe.io``: proto/array conversions, the input ``Transformer``, image loading,
resizing and oversampling.

Images are read with Pillow and resized with numpy (no scikit-image or SciPy). Differences
from pycaffe's scikit-image code, all at the level of interpolation details:

* ``resize_image`` interpolates bilinearly (``interp_order=1``, the default) or by nearest
  neighbour (``interp_order=0``) with pixel centres aligned and edge pixels repeated; higher
  orders raise ValueError. scikit-image's ``resize(mode='constant')`` blends the outermost
  output pixels towards zero when upsampling and, in recent versions, smooths before
  downsampling; images with other than 1 or 3 channels went through ``scipy.ndimage.zoom``,
  which aligns corner pixels instead of centres. Here every channel count takes the same path.
* ``load_image(color=False)`` converts colour images to grey with scikit-image's weights
  (0.2125 R + 0.7154 G + 0.0721 B); 16-bit and 32-bit integer images are scaled by their
  type's maximum, as ``img_as_float`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from recaffe.io import blobproto
from recaffe.proto import caffe_pb2


# ================================================================ proto / datum / ndarray
def blobproto_to_array(blob: caffe_pb2.BlobProto, return_diff: bool = False) -> np.ndarray:
    """The data (or diff) of a BlobProto, shaped by its legacy num/channels/height/width when any
    is set, else by ``shape.dim`` (no shape: a scalar, so more than one value is a ValueError)."""
    doubles, floats = (blob.double_diff, blob.diff) if return_diff else (blob.double_data, blob.data)
    values = np.array(doubles if len(doubles) else floats, dtype=np.float64)
    shape = blobproto.proto_shape(blob)
    if values.size != int(np.prod(shape, dtype=np.int64)):
        raise ValueError(f"BlobProto holds {values.size} values, which cannot take the shape {shape}")
    return values.reshape(shape)


def array_to_blobproto(arr: np.ndarray, diff: np.ndarray | None = None) -> caffe_pb2.BlobProto:
    """A BlobProto with ``shape.dim`` and float ``data`` (and ``diff``, not checked against arr)."""
    return blobproto.array_to_proto(np.asarray(arr, dtype=np.float32),
                                    None if diff is None else np.asarray(diff, dtype=np.float32))


def arraylist_to_blobprotovector_str(arraylist: Sequence[np.ndarray]) -> bytes:
    """A serialized BlobProtoVector of the arrays."""
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend(array_to_blobproto(arr) for arr in arraylist)
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(serialized: bytes) -> list[np.ndarray]:
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(serialized)
    return [blobproto_to_array(blob) for blob in vec.blobs]


def array_to_datum(arr: np.ndarray, label: int | None = None) -> caffe_pb2.Datum:
    """A Datum of a (C, H, W) array: uint8 arrays as ``data`` bytes, others as ``float_data``."""
    if arr.ndim != 3:
        raise ValueError("Incorrect array shape.")
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = (int(d) for d in arr.shape)
    if arr.dtype == np.uint8:
        datum.data = np.ascontiguousarray(arr).tobytes()
    else:
        datum.float_data.extend(np.asarray(arr, dtype=np.float64).ravel().tolist())
    if label is not None:
        datum.label = label
    return datum


def datum_to_array(datum: caffe_pb2.Datum) -> np.ndarray:
    """The (C, H, W) array of a raw Datum (uint8 from ``data``, else float from ``float_data``)."""
    shape = (datum.channels, datum.height, datum.width)
    if len(datum.data):
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape).copy()
    return np.array(datum.float_data, dtype=np.float64).reshape(shape)


# ================================================================ preprocessing
class Transformer:
    """Prepares (H, W, K) images for a net's inputs, and undoes it.

    ``inputs`` maps input names to their blob shapes (N, K, H, W). ``preprocess`` applies, in
    order: float32 → resize to (H, W) → transpose → channel swap → ×raw_scale → −mean →
    ×input_scale; ``deprocess`` inverts these steps in reverse order (without resizing back).
    """

    def __init__(self, inputs: Mapping[str, Sequence[int]]) -> None:
        self.inputs = {name: tuple(int(d) for d in shape) for name, shape in inputs.items()}
        self.transpose: dict[str, Sequence[int]] = {}
        self.channel_swap: dict[str, Sequence[int]] = {}
        self.raw_scale: dict[str, float] = {}
        self.mean: dict[str, np.ndarray] = {}
        self.input_scale: dict[str, float] = {}

    def _check_input(self, in_: str) -> None:
        if in_ not in self.inputs:
            raise Exception(f"{in_} is not one of the net inputs: {self.inputs}")

    def preprocess(self, in_: str, data: np.ndarray) -> np.ndarray:
        """(H', W', K) image -> (K, H, W) net input (see the class docstring for the order)."""
        self._check_input(in_)
        caffe_in = np.array(data, dtype=np.float32)
        in_dims = self.inputs[in_][2:]
        if caffe_in.shape[:2] != in_dims:
            caffe_in = resize_image(caffe_in, in_dims)
        if in_ in self.transpose:
            caffe_in = caffe_in.transpose(self.transpose[in_])
        if in_ in self.channel_swap:
            caffe_in = caffe_in[list(self.channel_swap[in_]), :, :]
        if in_ in self.raw_scale:
            caffe_in *= self.raw_scale[in_]
        if in_ in self.mean:
            caffe_in -= self.mean[in_]
        if in_ in self.input_scale:
            caffe_in *= self.input_scale[in_]
        return caffe_in

    def deprocess(self, in_: str, data: np.ndarray) -> np.ndarray:
        """Net input (K, H, W) (a leading 1 is squeezed) -> (H, W, K) image."""
        self._check_input(in_)
        decaf_in = data.copy().squeeze()
        if in_ in self.input_scale:
            decaf_in /= self.input_scale[in_]
        if in_ in self.mean:
            decaf_in += self.mean[in_]
        if in_ in self.raw_scale:
            decaf_in /= self.raw_scale[in_]
        if in_ in self.channel_swap:
            decaf_in = decaf_in[np.argsort(self.channel_swap[in_]), :, :]
        if in_ in self.transpose:
            decaf_in = decaf_in.transpose(np.argsort(self.transpose[in_]))
        return decaf_in

    def set_transpose(self, in_: str, order: Sequence[int]) -> None:
        """Axis order from the image's to the net's, e.g. (2, 0, 1) for HxWxK -> KxHxW."""
        self._check_input(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise Exception("Transpose order needs to have the same number of dimensions as the input.")
        self.transpose[in_] = order

    def set_channel_swap(self, in_: str, order: Sequence[int]) -> None:
        """Channel order taken after the transpose, e.g. (2, 1, 0) for RGB -> BGR."""
        self._check_input(in_)
        if len(order) != self.inputs[in_][1]:
            raise Exception("Channel swap needs to have the same number of dimensions as the input channels.")
        self.channel_swap[in_] = order

    def set_raw_scale(self, in_: str, scale: float) -> None:
        """Multiply raw input by ``scale`` before the mean (255 for models trained on 0..255)."""
        self._check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_: str, mean: np.ndarray) -> None:
        """The mean to subtract: per channel (K,), or (K, H, W) / (H, W), resized if its size differs."""
        self._check_input(in_)
        shape = mean.shape
        if mean.ndim == 1:
            if shape[0] != self.inputs[in_][1]:
                raise ValueError("Mean channels incompatible with input.")
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            if len(shape) == 2:
                shape = (1, *shape)
            if len(shape) != 3:
                raise ValueError("Mean shape invalid")
            if shape != self.inputs[in_][1:]:
                mean = _resize_mean(mean.reshape(shape), self.inputs[in_][2:])
        self.mean[in_] = mean

    def set_input_scale(self, in_: str, scale: float) -> None:
        """Multiply the input by ``scale`` after the mean is subtracted."""
        self._check_input(in_)
        self.input_scale[in_] = scale


def image_transformer(shape: Sequence[int], in_: str, mean: np.ndarray | None = None,
                      input_scale: float | None = None, raw_scale: float | None = None,
                      channel_swap: Sequence[int] | None = None) -> Transformer:
    """The Transformer of ``caffe.Classifier`` and ``caffe.Detector`` for input ``in_`` of blob
    ``shape``: HxWxK images transposed to KxHxW, and each setting that is given."""
    transformer = Transformer({in_: shape})
    transformer.set_transpose(in_, (2, 0, 1))
    settings: tuple[tuple[Callable[[str, Any], None], Any], ...] = (
        (transformer.set_mean, mean), (transformer.set_input_scale, input_scale),
        (transformer.set_raw_scale, raw_scale), (transformer.set_channel_swap, channel_swap))
    for setter, value in settings:
        if value is not None:
            setter(in_, value)
    return transformer


def _resize_mean(mean: np.ndarray, dims: Sequence[int]) -> np.ndarray:
    """A (K, H', W') mean resized to (K, H, W) through its [0, 1]-normalised values."""
    low, high = float(mean.min()), float(mean.max())
    if high == low:
        return np.full((mean.shape[0], *dims), low, dtype=np.float32)
    normal = resize_image(((mean - low) / (high - low)).transpose((1, 2, 0)), dims)
    return normal.transpose((2, 0, 1)) * (high - low) + low


# ================================================================ images
_GREY_WEIGHTS = np.array([0.2125, 0.7154, 0.0721])
_INTEGER_MAX = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0, "I": 2147483647.0}


def load_image(filename: str, color: bool = True) -> np.ndarray:
    """An image as float32 in [0, 1]: (H, W, 3) RGB when ``color`` (grey is repeated, alpha is
    dropped), else (H, W, 1) intensity."""
    from PIL import Image

    with Image.open(filename) as img:
        if img.mode in _INTEGER_MAX:
            pixels = np.asarray(img, dtype=np.float64) / _INTEGER_MAX[img.mode]
        elif img.mode == "F":
            pixels = np.asarray(img, dtype=np.float64)
        elif img.mode in ("1", "L", "LA"):
            pixels = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
        else:
            pixels = np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0
    if pixels.ndim == 3 and not color:
        pixels = pixels @ _GREY_WEIGHTS
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
        if color:
            pixels = np.tile(pixels, (1, 1, 3))
    return pixels.astype(np.float32)


def resize_image(im: np.ndarray, new_dims: Sequence[int] | np.ndarray, interp_order: int = 1) -> np.ndarray:
    """Resize an (H, W, K) array to ``new_dims`` = (height, width), any K; float32 out."""
    if interp_order not in (0, 1):
        raise ValueError(f"resize_image supports interp_order 0 (nearest) and 1 (bilinear), "
                         f"got {interp_order}")
    out = np.asarray(im, dtype=np.float32)
    for axis, size in enumerate(int(d) for d in new_dims[:2]):
        out = _resize_axis(out, axis, size, interp_order)
    return out


def _resize_axis(im: np.ndarray, axis: int, size: int, order: int) -> np.ndarray:
    """Resample one axis with pixel centres aligned: output i samples input (i + ½)·n/size − ½."""
    n = im.shape[axis]
    if n == size:
        return im
    centres = (np.arange(size) + 0.5) * (n / size) - 0.5
    if order == 0:
        return np.take(im, np.clip(np.floor(centres + 0.5), 0, n - 1).astype(np.intp), axis=axis)
    centres = np.clip(centres, 0, n - 1)
    low = np.floor(centres).astype(np.intp)
    high = np.minimum(low + 1, n - 1)
    weight = (centres - low).astype(np.float32).reshape([-1 if a == axis else 1 for a in range(im.ndim)])
    return np.take(im, low, axis=axis) * (1 - weight) + np.take(im, high, axis=axis) * weight


def oversample(images: Sequence[np.ndarray] | np.ndarray,
               crop_dims: Sequence[int] | np.ndarray) -> np.ndarray:
    """Ten crops per (H, W, K) image: the four corners and the centre, then their mirrors.

    Returns (10·N, crop_h, crop_w, K) float32; every image is cropped at the first one's size.
    """
    im_shape = np.array(images[0].shape)
    crop = np.array(crop_dims)
    corners = [(i, j) for i in (0, im_shape[0] - crop[0]) for j in (0, im_shape[1] - crop[1])]
    boxes = np.empty((5, 4), dtype=int)
    for k, (i, j) in enumerate(corners):
        boxes[k] = (i, j, i + crop[0], j + crop[1])
    centre = im_shape[:2] / 2.0
    boxes[4] = np.concatenate([centre - crop / 2.0, centre + crop / 2.0])  # truncated, as pycaffe
    crops = np.empty((10 * len(images), crop[0], crop[1], im_shape[-1]), dtype=np.float32)
    for n, im in enumerate(images):
        five = np.stack([im[b[0]:b[2], b[1]:b[3], :] for b in boxes])
        crops[10 * n:10 * n + 5] = five
        crops[10 * n + 5:10 * n + 10] = five[:, :, ::-1, :]
    return crops
