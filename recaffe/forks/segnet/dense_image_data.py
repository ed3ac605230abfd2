"""SegNet's DenseImageData: images and their per-pixel label images, named in pairs by a list file."""

from __future__ import annotations

import logging
from typing import Any, final

import numpy as np

from recaffe import forks, resume, rng
from recaffe.data import DataError, image
from recaffe.data.prefetch import Batch
from recaffe.data.readers import list_file_lines, list_order
from recaffe.data.transformer import DataTransformer
from recaffe.layer import Blobs
from recaffe.layers.data.base import BasePrefetchingDataLayer
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS

log = logging.getLogger(__name__)


def read_pair_list(source: str) -> list[tuple[str, str]]:
    """The list file: one ``<image path> <label image path>`` pair per line (blank lines skipped)."""
    pairs = []
    for number, line in list_file_lines(source):
        words = line.split()
        if len(words) != 2:
            raise DataError(f"{source}:{number}: expected '<image path> <label image path>', got {line!r}")
        pairs.append((words[0], words[1]))
    return pairs


def resize_nearest(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """OpenCV's ``cv::resize(..., INTER_NEAREST)`` of an HWC image: source index floor(i · src/dst)."""
    rows = np.minimum(np.floor(np.arange(height) * (1.0 / (height / img.shape[0]))).astype(np.int64),
                      img.shape[0] - 1)
    cols = np.minimum(np.floor(np.arange(width) * (1.0 / (width / img.shape[1]))).astype(np.int64),
                      img.shape[1] - 1)
    return np.ascontiguousarray(img[rows][:, cols])


class DenseImageReader:
    """Image/label pairs in list order (reshuffled at every wrap if asked), mirrored and cropped alike.

    ``draws`` is the stream the fork's prefetch thread draws from (see DenseImageDataLayer).
    """

    def __init__(self, pairs: list[tuple[str, str]], order: list[int], param: Any,
                 transformer: DataTransformer, shuffle_rng: rng.CaffeRNG | None, start: int,
                 draws: rng.CaffeRNG) -> None:
        self.pairs, self.order, self.param = pairs, order, param
        self.transformer, self.shuffle_rng, self.position, self.draws = transformer, shuffle_rng, start, draws

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        """The image (HWC, resized bilinearly) and label (HW1 gray, resized nearest) of entry ``index``."""
        p = self.param
        path, label_path = (p.root_folder + name for name in self.pairs[self.order[index]])
        img = image.read_image(path, p.new_height, p.new_width, p.is_color)
        label = image.decode_file(image.read_bytes(label_path), label_path, "gray")
        if p.new_height > 0:
            label = resize_nearest(label, p.new_height, p.new_width)
        if label.shape[:2] != img.shape[:2]:
            raise DataError(f"the label image {label_path!r} is {label.shape[0]}×{label.shape[1]} but its "
                            f"image {path!r} is {img.shape[0]}×{img.shape[1]}; they must match")
        return img, label, path

    def item_shape(self, img: np.ndarray) -> tuple[int, int, int]:
        p = self.param
        if p.crop_height > 0:
            if img.shape[0] < p.crop_height or img.shape[1] < p.crop_width:
                raise DataError(f"an image of {img.shape[0]}×{img.shape[1]} is smaller than the crop "
                                f"{p.crop_height}×{p.crop_width}")
            return (img.shape[2], p.crop_height, p.crop_width)
        return (img.shape[2], img.shape[0], img.shape[1])

    def load_batch(self) -> Batch:
        p = self.param
        first = self.read(self.position)
        shape = self.item_shape(first[0])
        data = np.empty((p.batch_size, *shape), dtype=self.transformer.dtype)
        label = np.empty((p.batch_size, 1, *shape[1:]), dtype=self.transformer.dtype)
        for index in range(p.batch_size):
            img, lab, path = first if index == 0 else self.read(self.position)
            if self.item_shape(img) != shape:
                raise DataError(f"image {path!r} gives an item of shape {self.item_shape(img)}, but this "
                                f"batch's first item has shape {shape} (set new_height/new_width or a crop)")
            if p.mirror and self.draws.rand() % 2:
                img, lab = img[:, ::-1], lab[:, ::-1]
            if p.crop_height > 0:
                h_off = self.draws.rand() % (img.shape[0] - p.crop_height + 1)
                w_off = self.draws.rand() % (img.shape[1] - p.crop_width + 1)
                window = (slice(h_off, h_off + p.crop_height), slice(w_off, w_off + p.crop_width))
                img, lab = img[window], lab[window]
            data[index] = self.transformer.transform_image(np.ascontiguousarray(img))
            label[index, 0] = lab[:, :, 0]
            self.position += 1
            if self.position >= len(self.pairs):
                self.position = 0
                if self.shuffle_rng is not None:
                    self.order = list(self.order)  # a new list: resume points keep the old one
                    self.shuffle_rng.shuffle(self.order)
        return Batch(data, label)

    def resume_point(self) -> resume.ResumePoint:
        position, order, draws = self.position, self.order, self.draws.get_state()
        shuffle = self.shuffle_rng.get_state() if self.shuffle_rng is not None else None

        def write(out: caffe_pb2.RecaffeDataState) -> None:
            out.position = position
            out.order[:] = order
            resume.write_rng(draws, out.transform_rng)  # the transformer has no engine of its own here
            if shuffle is not None:
                resume.write_rng(shuffle, out.shuffle_rng)

        return write

    def load_state(self, state: caffe_pb2.RecaffeDataState, where: str) -> None:
        if sorted(state.order) != list(range(len(self.pairs))) or not 0 <= state.position < len(self.pairs):
            raise DataError(f"{where}: the solver state's position in the image list does not fit the "
                            f"{len(self.pairs)} pairs of {self.param.source!r}; the list changed since "
                            f"the snapshot")
        self.position, self.order = state.position, list(state.order)
        self.draws = resume.load_rng(state.transform_rng, where)
        if self.shuffle_rng is not None:
            self.shuffle_rng = resume.load_rng(state.shuffle_rng, where)


@LAYERS.register("DenseImageData", dialect="segnet")
@final
class DenseImageDataLayer(BasePrefetchingDataLayer):
    """SegNet's DenseImageData: images with per-pixel label images, for segmentation.

    Each line of ``source`` is ``<image> <label image>`` (``root_folder`` + each path). The image is
    read as BGR (or gray) and resized bilinearly to new_height × new_width when both are set; the
    label image is read gray and resized nearest-neighbour (the fork's ``nearest_neighbour_interp``).
    Per item, in order: with ``mirror`` both flip horizontally when ``rand() % 2``; with
    crop_height/crop_width both are cut at h_off = rand() % (H − ch + 1), then w_off = rand() %
    (W − cw + 1); the image then goes through the DataTransformer (mean, scale), the label keeps its
    pixel values. The list wraps around; with ``shuffle`` it is shuffled at setup and at every wrap.
    Each batch takes its shape from its first item (the fork reshapes only for batch_size 1
    without resize or crop; otherwise every image must have one size).
    Random draws (main stream, at setup): shuffle-engine seed word (if shuffle), skip word (if
        rand_skip); the fork draws no thread word. The per-item words (mirror, crop) come, in the
        fork, from the main stream shared with its prefetch thread; recaffe gives the thread a copy
        of the main stream as it stands when the thread starts, so a lone layer draws exactly the
        fork's numbers and a run is reproducible (the fork's thread races the net's own draws).
    Params (dense_image_data_param): source, batch_size, root_folder="", shuffle=false,
        rand_skip=0, new_height=0, new_width=0 (both or neither), is_color=true, mirror=false,
        crop_height=0, crop_width=0 (both or neither); mean_file is not read (as in the fork: use
        transform_param). transform_param: mean_file, mean_value, scale; its mirror and crop_size
        are refused (the fork: "any stochastic transformation will break layer").
    Bottoms: none. Tops: data (batch_size, C, H, W); label (batch_size, 1, H, W).
    """

    exact_num_top_blobs = 2
    draws_thread_seed = False

    def data_layer_setup(self, top: Blobs) -> DenseImageReader:
        p = forks.get_dialect("segnet").fork_param(self.param).dense_image_data_param
        t = self.param.transform_param
        for name, a, b in (("new", p.new_height, p.new_width), ("crop", p.crop_height, p.crop_width)):
            if (a == 0) != (b == 0):
                raise self.error(f"dense_image_data_param.{name}_height and {name}_width must be set "
                                 f"together, got {a} and {b}")
        if t.mirror or t.crop_size:
            raise self.error("transform_param.mirror and crop_size would transform images and labels "
                             "differently; use dense_image_data_param.mirror, crop_height and crop_width")
        if p.HasField("mean_file"):
            log.warning("%s: dense_image_data_param.mean_file is not read (as in the fork); use "
                        "transform_param.mean_file", self.describe())
        self.positive_batch_size(p.batch_size, "dense_image_data_param")
        pairs = read_pair_list(p.source)
        order, shuffle_rng, start = list_order(
            len(pairs), p.shuffle, p.rand_skip,
            lambda start: self.error(f"not enough pairs to skip {start} (rand_skip {p.rand_skip}, "
                                     f"{len(pairs)} pairs)"))
        log.info("A total of %d examples.", len(pairs))
        draws = rng.CaffeRNG(0)
        draws.set_state(*rng.get_rng().get_state())
        reader = DenseImageReader(pairs, order, p, self.transformer, shuffle_rng, start, draws)
        shape = reader.item_shape(reader.read(start)[0])
        top[0].reshape((p.batch_size, *shape))
        top[1].reshape((p.batch_size, 1, *shape[1:]))
        return reader
