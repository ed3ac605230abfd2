"""R-CNN windows for WindowData: the window file, and sampling/warping windows into batches.

Window file (whitespace-separated tokens), repeated per image::

    # <image_index>
    <image path>            (relative to root_folder; no spaces)
    <channels> <height> <width>
    <num_windows>
    <class_index> <overlap> <x1> <y1> <x2> <y2>     (num_windows lines; inclusive pixel corners)

A window with overlap >= fg_threshold is foreground (its class must be > 0); one with overlap <
bg_threshold is background (class and overlap forced to 0); others are dropped.

Each batch samples ``batch_size - int(batch_size * fg_fraction)`` background windows, then the
foreground ones; per sample the layer's own engine gives ``word % len(pool)`` (the window) and,
when mirroring, ``word % 2``. A window is cut from its image (read in colour), optionally grown by
``context_pad`` (and made square in "square" mode) with the part outside the image left as zero
padding, warped bilinearly to the crop size, mirrored, mean-subtracted, scaled and written into a
zeroed (C, crop, crop) slot. Arithmetic follows window_data_layer.cpp in float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recaffe import resume, rng
from recaffe.data import DataError, image
from recaffe.data.prefetch import Batch
from recaffe.data.transformer import DataTransformer
from recaffe.proto import caffe_pb2

F32 = np.float32


@dataclass(frozen=True)
class Window:
    image_index: int
    label: int
    overlap: float
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass
class WindowSet:
    images: list[tuple[str, tuple[int, int, int]]]  # (path with root_folder, (C, H, W))
    foreground: list[Window]
    background: list[Window]


def read_window_file(source: str, param: caffe_pb2.WindowDataParameter) -> WindowSet:
    """Parse a window file and split its windows into foreground and background."""
    try:
        with open(source, encoding="utf-8") as f:
            tokens = f.read().split()
    except OSError as e:
        raise DataError(f"failed to open the window file {source!r}: {e.strerror}") from e
    if not tokens:
        raise DataError(f"the window file {source!r} is empty")
    windows = WindowSet([], [], [])
    fg_threshold, bg_threshold = F32(param.fg_threshold), F32(param.bg_threshold)
    pos = 0
    try:
        while pos < len(tokens):
            if tokens[pos] != "#":
                raise ValueError(f"expected '#' at token {pos + 1}, got {tokens[pos]!r}")
            image_index, path = int(tokens[pos + 1]), tokens[pos + 2]
            size = (int(tokens[pos + 3]), int(tokens[pos + 4]), int(tokens[pos + 5]))
            windows.images.append((param.root_folder + path, size))
            count, pos = int(tokens[pos + 6]), pos + 7
            for _ in range(count):
                label, overlap = int(tokens[pos]), F32(tokens[pos + 1])
                corners = [int(t) for t in tokens[pos + 2 : pos + 6]]
                pos += 6
                if overlap >= fg_threshold:
                    if label <= 0:
                        raise ValueError(f"foreground window of image {image_index} has class {label}")
                    windows.foreground.append(Window(image_index, label, float(overlap), *corners))
                elif overlap < bg_threshold:
                    windows.background.append(Window(image_index, 0, 0.0, *corners))
    except (ValueError, IndexError) as e:
        raise DataError(f"malformed window file {source!r}: {e}") from e
    return windows


class WindowSampler:
    """The WindowData batch loader (see the module docstring)."""

    def __init__(self, windows: WindowSet, param: caffe_pb2.WindowDataParameter,
                 transformer: DataTransformer, channels: int, engine: rng.CaffeRNG) -> None:
        """Crop size, mirror, mean and dtype come from ``transformer`` (its engine is not used)."""
        self.windows, self.param, self.channels, self.engine = windows, param, channels, engine
        self.crop, self.mirror = transformer.param.crop_size, transformer.param.mirror
        self.mean, self.mean_values, self.dtype = transformer.mean, transformer.mean_values, transformer.dtype
        self.cache: dict[str, bytes] = {}
        if param.cache_images:
            for path, _ in windows.images:
                self.cache[path] = image.read_bytes(path)

    def load_batch(self) -> Batch:
        batch_size, crop = self.param.batch_size, self.crop
        data = np.zeros((batch_size, self.channels, crop, crop), dtype=self.dtype)
        label = np.empty(batch_size, dtype=self.dtype)
        num_fg = int(F32(batch_size) * F32(self.param.fg_fraction))
        item = 0
        pools = ((self.windows.background, batch_size - num_fg), (self.windows.foreground, num_fg))
        for pool, count in pools:
            for _ in range(count):
                window = pool[self.engine.rand() % len(pool)]
                mirror = bool(self.mirror) and self.engine.rand() % 2 == 1
                patch, pad_h, pad_w = self._warp(self._image(window), window, mirror)
                h, w = patch.shape[1:]
                data[item, :, pad_h : pad_h + h, pad_w : pad_w + w] = self._normalise(patch, pad_h, pad_w)
                label[item] = window.label
                item += 1
        return Batch(data, label)

    def resume_point(self) -> resume.ResumePoint:
        state = self.engine.get_state()
        return lambda out: resume.write_rng(state, out.shuffle_rng)

    def load_state(self, state: caffe_pb2.RecaffeDataState, where: str) -> None:
        self.engine = resume.load_rng(state.shuffle_rng, where)

    def _image(self, window: Window) -> np.ndarray:
        if not 0 <= window.image_index < len(self.windows.images):
            raise DataError(f"a window names image {window.image_index}, but the window file lists "
                            f"{len(self.windows.images)} images (indices must count from 0)")
        path = self.windows.images[window.image_index][0]
        data = self.cache[path] if path in self.cache else image.read_bytes(path)
        img = image.decode_file(data, path, "color")
        if img.shape[2] != self.channels:
            raise DataError(
                f"image {path!r} has {img.shape[2]} channels, the window file says {self.channels}")
        return img

    def _warp(self, img: np.ndarray, window: Window, mirror: bool) -> tuple[np.ndarray, int, int]:
        """The window cut out, warped and mirrored, as (C, h, w), with its top/left padding."""
        crop, pad = self.crop, self.param.context_pad
        x1, y1, x2, y2 = window.x1, window.y1, window.x2, window.y2
        out_h = out_w = crop
        pad_h = pad_w = 0
        if pad > 0 or self.param.crop_mode == "square":
            context_scale = F32(crop) / F32(crop - 2 * pad)
            half_h, half_w = F32((y2 - y1 + 1) / 2.0), F32((x2 - x1 + 1) / 2.0)
            center_x, center_y = F32(x1) + half_w, F32(y1) + half_h
            if self.param.crop_mode == "square":
                half_h = half_w = max(half_h, half_w)
            x1, x2 = _c_round(center_x - half_w * context_scale), _c_round(center_x + half_w * context_scale)
            y1, y2 = _c_round(center_y - half_h * context_scale), _c_round(center_y + half_h * context_scale)
            unclipped_h, unclipped_w = y2 - y1 + 1, x2 - x1 + 1
            pads = [max(0, -x1), max(0, -y1), max(0, x2 - img.shape[1] + 1), max(0, y2 - img.shape[0] + 1)]
            x1, y1, x2, y2 = x1 + pads[0], y1 + pads[1], x2 - pads[2], y2 - pads[3]
            scale_x, scale_y = F32(crop) / F32(unclipped_w), F32(crop) / F32(unclipped_h)
            out_w, out_h = _c_round(F32(x2 - x1 + 1) * scale_x), _c_round(F32(y2 - y1 + 1) * scale_y)
            pad_x1, pad_y1, pad_x2 = (
                _c_round(F32(v) * s) for v, s in zip(pads[:3], (scale_x, scale_y, scale_x)))
            pad_h, pad_w = pad_y1, pad_x2 if mirror else pad_x1
            out_h, out_w = min(out_h, crop - pad_h), min(out_w, crop - pad_w)
        if not (0 <= x1 <= x2 < img.shape[1] and 0 <= y1 <= y2 < img.shape[0]):
            raise DataError(f"window ({window.x1}, {window.y1}, {window.x2}, {window.y2}) of image "
                            f"{window.image_index} lies outside the {img.shape[1]}x{img.shape[0]} image")
        patch = image.resize_linear(img[y1 : y2 + 1, x1 : x2 + 1], out_h, out_w)
        if mirror:
            patch = patch[:, ::-1]
        return np.ascontiguousarray(patch.transpose(2, 0, 1)), pad_h, pad_w

    def _normalise(self, patch: np.ndarray, pad_h: int, pad_w: int) -> np.ndarray:
        values = patch.astype(self.dtype)
        if self.mean is not None:
            off = (self.mean.shape[2] - self.crop) // 2
            h, w = values.shape[1:]
            mean = self.mean[:, off + pad_h : off + pad_h + h, off + pad_w : off + pad_w + w]
            if mean.shape != values.shape:
                raise DataError(
                    f"the mean_file of shape {self.mean.shape} is too small for crop_size {self.crop}")
            values -= mean
        elif self.mean_values.size:
            values -= np.broadcast_to(self.mean_values, (self.channels,))[:, None, None]
        values *= self.dtype(F32(self.param.scale))
        return values


def _c_round(value: np.float32) -> int:
    """C's ``round`` (half away from zero) of a float32, as an int."""
    return int(math.copysign(math.floor(abs(float(value)) + 0.5), float(value)))

