"""Caffe's DataTransformer: crop, mirror, mean subtraction and scaling of one item at a time.

For an item x of shape (C, H, W) (a Datum's values, or an image as CHW):

    out[c, h, w] = (x[c, h_off + h, w_off + w] - mean) * scale,   then reversed along w if mirrored

``mean`` is the ``mean_file`` blob at the same (cropped) position, or ``mean_value[c]`` (one value
is used for every channel); the mean is subtracted before scaling, each step rounded in the
working dtype. Random choices come from the transformer's own engine, created by ``init_rand``
exactly when Caffe's InitRand creates one (mirror, or crop in TRAIN), seeded from the main
stream. Per item, in this order: mirror ``Rand(2) == 1`` (when ``mirror``, in both phases), then in
TRAIN ``h_off = Rand(H - crop + 1)`` and ``w_off = Rand(W - crop + 1)``; TEST crops the centre.
``Rand(n)`` is the engine's next word mod n.
"""

from __future__ import annotations

import logging

import numpy as np

from recaffe import resume, rng
from recaffe.data import DataError, datum
from recaffe.io import binaryproto
from recaffe.proto import caffe_pb2

log = logging.getLogger(__name__)


class DataTransformer:
    """``DataTransformer(transform_param, phase)``; see the module docstring."""

    def __init__(self, param: caffe_pb2.TransformationParameter, phase: int,
                 dtype: type[np.floating] = np.float32) -> None:
        self.param = param
        self.phase = phase
        self.dtype = dtype
        self.rng: rng.CaffeRNG | None = None
        self.mean: np.ndarray | None = None
        if param.HasField("mean_file") and param.mean_value:
            raise DataError("cannot specify mean_file and mean_value at the same time")
        if param.HasField("mean_file"):
            self.mean = load_mean_file(param.mean_file).astype(dtype)
        self.mean_values = np.asarray(param.mean_value, dtype=np.float32).astype(dtype)
        if param.force_color and param.force_gray:
            raise DataError("cannot set both force_color and force_gray")
        self._warned_force = False

    @property
    def decode_flag(self) -> str:
        """How encoded datums are decoded: forced colour or gray, else the image's own channels."""
        return "color" if self.param.force_color else "gray" if self.param.force_gray else "native"

    def init_rand(self) -> None:
        """Caffe's InitRand: a fresh engine from one main-stream word iff mirror or TRAIN crop."""
        needs = self.param.mirror or (self.phase == caffe_pb2.TRAIN and self.param.crop_size > 0)
        self.rng = rng.CaffeRNG(rng.get_rng().rand()) if needs else None

    def resume_point(self) -> resume.ResumePoint:
        """The engine's state now, when there is one, to be written later (``recaffe.resume``)."""
        state = self.rng.get_state() if self.rng is not None else None

        def write(out: caffe_pb2.RecaffeDataState) -> None:
            if state is not None:
                resume.write_rng(state, out.transform_rng)

        return write

    def load_state(self, state: caffe_pb2.RecaffeDataState, where: str) -> None:
        if self.rng is not None and state.HasField("transform_rng"):
            self.rng = resume.load_rng(state.transform_rng, where)

    def datum_values(self, item: caffe_pb2.Datum, where: str = "record") -> np.ndarray:
        """The datum as (C, H, W), decoding encoded images with ``force_color``/``force_gray``."""
        if not item.encoded and (self.param.force_color or self.param.force_gray) and not self._warned_force:
            log.error("force_color and force_gray only apply to encoded datums")
            self._warned_force = True
        return datum.datum_array(item, self.decode_flag, where)

    def output_shape(self, values_shape: tuple[int, ...]) -> tuple[int, int, int]:
        """InferBlobShape for one (C, H, W) item: the crop replaces H and W."""
        c, h, w = values_shape
        crop = self.param.crop_size
        if c <= 0 or h < crop or w < crop:
            raise DataError(f"an item of shape {(c, h, w)} is smaller than crop_size {crop}")
        return (c, crop, crop) if crop else (c, h, w)

    def check_mean_values(self, channels: int) -> None:
        """``mean_value`` is given 0 times, once (for every channel) or once per channel."""
        if self.mean_values.size not in (0, 1, channels):
            raise DataError(f"specify either 1 mean_value or as many as channels ({channels}), "
                            f"got {self.mean_values.size}")

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Transform one (C, H, W) item (uint8 or float) into a new (C, h, w) array of ``dtype``."""
        c, h, w = values.shape
        out_c, out_h, out_w = self.output_shape(values.shape)
        mirror = bool(self.param.mirror) and self._rand(2) == 1
        h_off = w_off = 0
        if self.param.crop_size:
            if self.phase == caffe_pb2.TRAIN:
                h_off = self._rand(h - out_h + 1)
                w_off = self._rand(w - out_w + 1)
            else:
                h_off, w_off = (h - out_h) // 2, (w - out_w) // 2
        window = (slice(None), slice(h_off, h_off + out_h), slice(w_off, w_off + out_w))
        out = np.array(values[window], dtype=self.dtype, order="C")
        if self.mean is not None:
            if self.mean.shape != (c, h, w):
                raise DataError(f"the mean_file {self.param.mean_file!r} has shape {self.mean.shape} "
                                f"but the item has shape {(c, h, w)}")
            out -= self.mean[window]
        elif self.mean_values.size:
            self.check_mean_values(c)
            out -= np.broadcast_to(self.mean_values, (c,))[:, None, None]
        out *= self.dtype(np.float32(self.param.scale))
        return np.ascontiguousarray(out[:, :, ::-1]) if mirror else out

    def transform_datum(self, item: caffe_pb2.Datum, where: str = "record") -> np.ndarray:
        return self.transform(self.datum_values(item, where))

    def transform_image(self, img: np.ndarray) -> np.ndarray:
        """Transform an (H, W, C) uint8 image (Caffe's cv::Mat variant)."""
        return self.transform(img.transpose(2, 0, 1))

    def _rand(self, n: int) -> int:
        if self.rng is None:
            raise RuntimeError("DataTransformer.init_rand() must be called before random transforms")
        return self.rng.rand() % n


def load_mean_file(path: str) -> np.ndarray:
    """A ``.binaryproto`` mean as (C, H, W), read like the DataTransformer reads it."""
    try:
        return binaryproto.read_mean(path)
    except ValueError as e:
        raise DataError(f"cannot read the mean_file {path!r}: {e}") from e
