"""Images as Caffe's OpenCV code sees them: HWC uint8 arrays in BGR order, decoded with Pillow.

Caffe reads images with ``cv::imread``/``cv::imdecode`` and resizes them with ``cv::resize``
(bilinear). This module gives the same arrays from Pillow, with these known differences:

* Decoding: JPEG and PNG go through the same libjpeg/libpng algorithms in both libraries, so
  pixels agree for ordinary 8-bit files. Images with 16 bits per sample are refused (Caffe
  CHECK-fails on them too); exotic formats may decode differently.
* Colour to gray (``is_color: false``, ``-gray``): JPEGs are decoded straight to their luma
  channel, as libjpeg does for OpenCV; PNGs as libpng converts them for OpenCV's PNG reader
  (``png_set_rgb_to_gray`` with 0.299, 0.587: ``(9797 R + 19234 G + 3737 B) >> 15``, truncated,
  grey pixels kept; checked against the SegNet fork's DenseImageData); other images use
  ``cv::cvtColor``'s fixed-point ``(4899 R + 9617 G + 1868 B + 8192) >> 14``, which rounds, unlike libpng,
  whose rounding can differ by one grey level.
* Resizing: ``resize_linear`` re-implements OpenCV's ``INTER_LINEAR`` for 8-bit images (half-pixel
  centres, clamped borders, 11-bit fixed-point weights, the rounding of OpenCV's SIMD loops, no
  antialiasing) rather than Pillow's antialiased filter. As OpenCV, a column past the border takes
  the edge column with weights (1, 0), while a row past it keeps its weights (1 - f, f) on the
  edge row twice (which can round one grey level lower). Identical to OpenCV (opencv-python 4.x
  and 5.0) on random sizes.
* Encoding (``-encoded`` with a re-encode): Pillow writes different (still valid) PNG/JPEG bytes
  than ``cv::imencode``; JPEGs use OpenCV's default quality, 95.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from recaffe import errors
from recaffe.data import DataError

FLAGS = ("native", "color", "gray")
_COEF_BITS = 11  # OpenCV's INTER_RESIZE_COEF_BITS


def decode_image(data: bytes, flag: str = "native") -> np.ndarray:
    """``cv::imdecode``: ``flag`` "color" gives (H, W, 3) BGR, "gray" (H, W, 1), "native" the file's own."""
    if flag not in FLAGS:
        raise ValueError(f"flag must be one of {FLAGS}, got {flag!r}")
    try:
        image = Image.open(io.BytesIO(data))
        if flag == "gray" and image.format == "JPEG":
            image.draft("L", image.size)
        image.load()
    except Exception as e:  # Pillow's decoders raise many kinds (SyntaxError, EOFError, struct.error)
        raise DataError(f"cannot decode the image ({errors.describe(e)})") from e
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        raise DataError(f"cannot use a {image.mode} image: Caffe needs 8-bit samples")
    if flag == "color":
        return _bgr(image.convert("RGB"))
    if flag == "gray":
        return _gray(image)
    if image.mode in ("L", "1"):
        return np.asarray(image.convert("L"))[:, :, None]
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"))
        return np.ascontiguousarray(rgba[:, :, [2, 1, 0, 3]])
    return _bgr(image.convert("RGB"))


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the image file ``path`` (a DataError naming it if it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise DataError(f"could not open or find the image {os.fspath(path)!r}: {e.strerror}") from e


def decode_file(data: bytes, path: str | os.PathLike[str], flag: str = "native") -> np.ndarray:
    """``decode_image`` of the bytes read from ``path``, with errors naming that file."""
    try:
        return decode_image(data, flag)
    except DataError as e:
        raise DataError(f"could not read the image {os.fspath(path)!r}: {e}") from e


def read_image(path: str | os.PathLike[str], height: int = 0, width: int = 0,
               is_color: bool = True) -> np.ndarray:
    """``ReadImageToCVMat``: read (colour or gray), then resize when both sizes are positive."""
    image = decode_file(read_bytes(path), path, "color" if is_color else "gray")
    if height > 0 and width > 0:
        image = resize_linear(image, height, width)
    return image


def encode_image(image: np.ndarray, ext: str) -> bytes:
    """``cv::imencode("." + ext)`` for a BGR or gray HWC image."""
    fmt = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "bmp": "BMP", "tif": "TIFF", "tiff": "TIFF"}
    if ext.lower() not in fmt:
        raise DataError(f"cannot encode images as {ext!r} (use one of {', '.join(sorted(fmt))})")
    pixels = image[:, :, 0] if image.shape[2] == 1 else image[:, :, [2, 1, 0]]
    out = io.BytesIO()
    options = {"quality": 95} if fmt[ext.lower()] == "JPEG" else {}
    Image.fromarray(np.ascontiguousarray(pixels)).save(out, format=fmt[ext.lower()], **options)
    return out.getvalue()


def resize_linear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """OpenCV's ``cv::resize(..., INTER_LINEAR)`` of an 8-bit HWC image (see the module notes)."""
    src_h, src_w = image.shape[:2]
    if (src_h, src_w) == (height, width):
        return image.copy()
    rows0, rows1, beta0, beta1 = _linear_taps(src_h, height, clamp_weights=False)
    cols0, cols1, alpha0, alpha1 = _linear_taps(src_w, width, clamp_weights=True)
    pixels = image.astype(np.int64)
    across = pixels[:, cols0] * alpha0[None, :, None] + pixels[:, cols1] * alpha1[None, :, None]
    top = (across[rows0] >> 4) * beta0[:, None, None] >> 16
    bottom = (across[rows1] >> 4) * beta1[:, None, None] >> 16
    return np.clip((top + bottom + 2) >> 2, 0, 255).astype(np.uint8)


def _linear_taps(src: int, dst: int,
                 clamp_weights: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and 11-bit weights of each output position (half-pixel centres, clamped
    indices; ``clamp_weights``: a position past the border gets weights (1, 0), as OpenCV's
    horizontal pass, else it keeps its own, as OpenCV's vertical pass)."""
    scale = src / dst
    fx = ((np.arange(dst) + 0.5) * scale - 0.5).astype(np.float32)
    sx = np.floor(fx).astype(np.int64)
    fx = (fx - sx.astype(np.float32)).astype(np.float32)
    if clamp_weights:
        fx[(sx < 0) | (sx >= src - 1)] = 0
    one = np.float32(1 << _COEF_BITS)
    w0 = np.rint((np.float32(1) - fx) * one).astype(np.int64)
    w1 = np.rint(fx * one).astype(np.int64)
    return np.clip(sx, 0, src - 1), np.clip(sx + 1, 0, src - 1), w0, w1


def _bgr(rgb: Image.Image) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])


def _gray(image: Image.Image) -> np.ndarray:
    if image.mode in ("L", "1"):
        return np.asarray(image.convert("L"))[:, :, None]
    rgb = np.asarray(image.convert("RGB")).astype(np.int64)
    r, g, b = rgb[:, :, 0], rgb[:, :, 1], rgb[:, :, 2]
    if image.format == "PNG":  # libpng's own conversion: 15-bit weights, truncated
        gray = np.where((r == g) & (g == b), r, (r * 9797 + g * 19234 + b * 3737) >> 15)
    else:
        gray = (r * 4899 + g * 9617 + b * 1868 + 8192) >> 14
    return gray.astype(np.uint8)[:, :, None]
