from __future__ import annotations

import logging
from typing import Any, final

import numpy as np
from google.protobuf import message

from recaffe import distributed, forks, resume, rng
from recaffe.data import DataError, crand, db, image
from recaffe.data.prefetch import Batch
from recaffe.data.readers import DatumReader
from recaffe.data.transformer import DataTransformer
from recaffe.forks.ssd import augment
from recaffe.forks.ssd.caffe_ssd_pb2 import AnnotatedDatum
from recaffe.layer import Blobs
from recaffe.layers.data.base import BasePrefetchingDataLayer
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS

log = logging.getLogger(__name__)


def parse_annotated(value: bytes, where: str) -> Any:
    item = AnnotatedDatum()
    try:
        item.ParseFromString(value)
    except message.DecodeError as e:
        raise DataError(f"{where} is not a valid AnnotatedDatum ({e})") from e
    return item


def groups_of(item: Any) -> list[augment.Group]:
    return [
        augment.Group(
            g.group_label,
            [
                augment.Box(
                    a.instance_id, a.bbox.xmin, a.bbox.ymin, a.bbox.xmax, a.bbox.ymax, a.bbox.difficult
                )
                for a in g.annotation
            ],
        )
        for g in item.annotation_group
    ]


class AnnotatedReader(DatumReader):
    """AnnotatedDatums from a database in key order, augmented and transformed (see the layer)."""

    def __init__(
        self,
        database: db.Database,
        transformer: DataTransformer,
        fork_transform: Any,
        param: Any,
        batch_size: int,
        labels: bool,
        shard: tuple[int, int] | None,
    ) -> None:
        super().__init__(database, transformer, batch_size, labels, shard)
        self.t = fork_transform
        self.samplers = list(param.batch_sampler)
        self.anno_type = param.anno_type if param.HasField("anno_type") else None
        self.stream = rng.CaffeRNG(0)  # replaced by seed_thread before the thread starts
        self.c_rand = crand.GlibcRandom(1)  # the channel shuffle's rand(), as in a fresh process
        self._warned_raw = False

    def seed_thread(self, seed: int) -> None:
        """The prefetch thread's own Caffe stream (caffe_rng_uniform/caffe_rng_rand in load_batch)."""
        self.stream = rng.CaffeRNG(seed)

    def current_annotated(self) -> tuple[Any, str]:
        key = self._cursor.key()
        where = f"record {key.decode(errors='replace')!r} of the {self.database.where}"
        return parse_annotated(self._cursor.value(), where), where

    def image(self, item: Any, where: str) -> np.ndarray:
        """The record's image as HWC uint8 (decoded when encoded)."""
        values = self.transformer.datum_values(item.datum, where)
        if values.dtype != np.uint8:
            raise DataError(
                f"{where}: AnnotatedData needs uint8 pixels (data bytes or an encoded image), not float_data"
            )
        return np.ascontiguousarray(values.transpose(1, 2, 0))

    def output_shape(self, img: np.ndarray) -> tuple[int, int, int]:
        """InferBlobShape: the image after resize_param, then the crop."""
        h, w, c = img.shape
        if self.t.HasField("resize_param"):
            h, w = augment.resized_size(self.t.resize_param, h, w)
        crop_h, crop_w = self.crop()
        if h < crop_h or w < crop_w:
            raise DataError(f"an image of {h}x{w} is smaller than the crop {crop_h}x{crop_w}")
        return (c, crop_h or h, crop_w or w)

    def crop(self) -> tuple[int, int]:
        size = self.transformer.param.crop_size
        return (size, size) if size else (self.t.crop_h, self.t.crop_w)

    def item_shape(self) -> tuple[int, int, int]:
        item, where = self.current_annotated()
        return self.output_shape(self.image(item, where))

    def has_anno_type(self, item: Any) -> bool:
        return item.HasField("type") or self.anno_type is not None

    def load_batch(self) -> Batch:
        self._skip_other_ranks()
        first, where = self.current_annotated()
        # the batch's shape is the first record's (the fork's CHECK), but FIT_SMALL_SIZE
        # (batch_size 1) takes the shape of the item as transformed
        resize = self.t.resize_param if self.t.HasField("resize_param") else None
        fit_small = resize is not None and resize.resize_mode == resize.FIT_SMALL_SIZE
        shape = None if fit_small else self.output_shape(self.image(first, where))
        items: list[np.ndarray] = []
        rich = self.labels and self.has_anno_type(first)
        plain = np.empty(self.batch_size, dtype=self.transformer.dtype) if self.labels and not rich else None
        rows: list[list[float]] = []
        for index in range(self.batch_size):
            item, where = self.current_annotated()
            if rich and not item.HasField("type") and self.anno_type is None:
                raise DataError(f"{where} has no annotation type, unlike the first record of the batch")
            img, groups = self.augment_item(self.image(item, where), groups_of(item), item.datum.encoded)
            values, groups = self.transform(img, groups)
            if shape is not None and values.shape != shape:
                raise DataError(
                    f"{where} gives an item of shape {values.shape}, but this batch's first record "
                    f"gives {shape} (sizes may change only between batches: crop or resize to one size)"
                )
            items.append(values)
            if plain is not None:
                plain[index] = item.datum.label
            for group in groups:
                rows += [
                    [index, group.label, b.instance_id, b.xmin, b.ymin, b.xmax, b.ymax, float(b.difficult)]
                    for b in group.boxes
                ]
            self._next()
            self._skip_other_ranks()
        data = np.stack(items)
        if not rich:
            return Batch(data, plain)
        label = np.asarray(rows or [[-1.0] * 8], dtype=self.transformer.dtype).reshape(1, 1, -1, 8)
        return Batch(data, label)

    def augment_item(
        self, img: np.ndarray, groups: list[augment.Group], encoded: bool
    ) -> tuple[np.ndarray, list[augment.Group]]:
        """Distort, expand, then crop to one of the batch samplers' samples (the fork's order).

        As in the fork, an encoded record's image is stored back as JPEG (OpenCV's quality 95)
        after each of these steps that changes it, and decoded again; a raw record is not
        distorted (the fork logs an error) and is expanded onto bytes of 32 (the fork's fill).
        """
        t = self.t
        emit = t.emit_constraint if t.HasField("emit_constraint") else None
        if t.HasField("distort_param"):
            if encoded:
                img = self.reencode(augment.distort_image(img, t.distort_param, self.stream, self.c_rand))
            elif not self._warned_raw:
                log.error(
                    "distort_param applies to encoded records only (as in the SSD fork); not distorting"
                )
                self._warned_raw = True
        if t.HasField("expand_param"):
            img, groups = self.expand(img, groups, emit, encoded)
        if self.samplers:
            samples = augment.generate_samples(groups, self.samplers, self.stream)
            if samples:
                chosen = samples[self.stream.rand() % len(samples)]
                img = augment.crop_image(img, chosen)
                if encoded:
                    img = self.reencode(img)
                groups = augment.transform_groups(groups, augment.clip(chosen), False, emit)
        return img, groups

    def reencode(self, img: np.ndarray) -> np.ndarray:
        """EncodeCVMatToDatum(img, "jpg") then the decode Transform does: the JPEG round trip."""
        return image.decode_image(image.encode_image(img, "jpg"), self.transformer.decode_flag)

    def expand(
        self, img: np.ndarray, groups: list[augment.Group], emit: Any, encoded: bool
    ) -> tuple[np.ndarray, list[augment.Group]]:
        p = self.t.expand_param
        if self.stream.uniform(1, 0, 1)[0] > np.float32(p.prob) or abs(p.max_expand_ratio - 1) < 1e-2:
            return img, groups
        ratio = self.stream.uniform(1, 1, p.max_expand_ratio)[0]
        fill = self.fill(img.shape[2]) if encoded else np.full(img.shape[2], 32, dtype=np.uint8)
        canvas, where = augment.expand_image(img, ratio, fill, self.stream)
        if encoded:
            canvas = self.reencode(canvas)
        return canvas, augment.transform_groups(groups, where, False, emit)

    def fill(self, channels: int) -> np.ndarray:
        """What expansion fills an encoded record's canvas with: the mean values (rounded), else 0."""
        means = self.transformer.mean_values
        if means.size:
            self.transformer.check_mean_values(channels)
            return np.clip(np.rint(np.broadcast_to(means, (channels,))), 0, 255).astype(np.uint8)
        return np.zeros(channels, dtype=np.uint8)

    def transform(
        self, img: np.ndarray, groups: list[augment.Group]
    ) -> tuple[np.ndarray, list[augment.Group]]:
        """The fork's Transform of an annotated image: mirror draw, resize, crop, mean and scale;
        the boxes follow (resize policy, emit constraint, crop, mirror)."""
        t, tr = self.t, self.transformer
        mirror = bool(tr.param.mirror) and tr._rand(2) == 1
        original = img.shape[:2]
        if t.HasField("resize_param"):
            img = augment.apply_resize(img, t.resize_param, self.stream)
        h, w = img.shape[:2]
        crop_h, crop_w = self.crop()
        h_off = w_off = 0
        out_h, out_w = h, w
        if crop_h and crop_w:
            out_h, out_w = crop_h, crop_w
            if tr.phase == caffe_pb2.TRAIN:
                h_off, w_off = tr._rand(h - crop_h + 1), tr._rand(w - crop_w + 1)
            else:
                h_off, w_off = (h - crop_h) // 2, (w - crop_w) // 2
        window = img[h_off : h_off + out_h, w_off : w_off + out_w]
        values = np.array(window.transpose(2, 0, 1), dtype=tr.dtype)
        if tr.mean is not None:
            if tr.mean.shape != (img.shape[2], h, w):
                raise DataError(
                    f"the mean_file has shape {tr.mean.shape} but the image is {(img.shape[2], h, w)}"
                )
            values -= tr.mean[:, h_off : h_off + out_h, w_off : w_off + out_w]
        elif tr.mean_values.size:
            tr.check_mean_values(img.shape[2])
            values -= np.broadcast_to(tr.mean_values, (img.shape[2],))[:, None, None]
        values *= tr.dtype(np.float32(tr.param.scale))
        if mirror:
            values = np.ascontiguousarray(values[:, :, ::-1])
        f = np.float32
        crop = (
            float(f(w_off) / f(w)),
            float(f(h_off) / f(h)),
            float(f(w_off + out_w) / f(w)),
            float(f(h_off + out_h) / f(h)),
        )
        resize = t.resize_param if t.HasField("resize_param") else None
        emit = t.emit_constraint if t.HasField("emit_constraint") else None
        return values, augment.transform_groups(groups, crop, mirror, emit, resize, original)

    def resume_point(self) -> resume.ResumePoint:
        reader, stream, words = super().resume_point(), self.stream.get_state(), self.c_rand.get_state()

        def write(out: caffe_pb2.RecaffeDataState) -> None:
            reader(out)
            # AnnotatedData keeps no shuffle or row order: those fields hold its own two streams
            resume.write_rng(stream, out.shuffle_rng)
            out.rows[:] = words

        return write

    def load_state(self, state: caffe_pb2.RecaffeDataState, where: str) -> None:
        super().load_state(state, where)
        if state.HasField("shuffle_rng"):
            self.stream = resume.load_rng(state.shuffle_rng, where)
        if state.rows:
            self.c_rand.set_state(list(state.rows))


@LAYERS.register("AnnotatedData", dialect="ssd")
@final
class AnnotatedDataLayer(BasePrefetchingDataLayer):
    """SSD's AnnotatedData: images with boxes (AnnotatedDatum records of an LMDB/LevelDB),
    augmented as SSD trains, in batches (the fork's annotated_data_layer.cpp).

    Per record, in the fork's order: photometric distortion (distort_param), expansion onto a
    larger canvas filled with the mean values (expand_param), a crop to one of the samples the
    batch_samplers draw (each: up to max_trials random boxes of its scale and aspect-ratio range
    that meet its sample_constraint — Jaccard overlap, sample and object coverage with some
    object — at most max_sample; one of all the samples is picked), then the transform: mirror,
    resize_param (WARP, FIT_SMALL_SIZE, FIT_LARGE_SIZE_AND_PAD; one of the interp_modes at
    random: LINEAR, NEAREST as OpenCV, AREA, CUBIC, LANCZOS4 within a grey level of it), crop
    (crop_size or crop_h/crop_w), mean, scale. Boxes follow every step; emit_constraint (the
    box's centre inside, or MIN_OVERLAP) decides which survive a crop; boxes and groups left
    empty are dropped.
    Labels: with an annotation type (in the records or anno_type), top 1 is (1, 1, B, 8), one row
    [item_id, group_label, instance_id, xmin, ymin, xmax, ymax, difficult] per box of the batch
    (one row of -1 when there is none); otherwise the Datum labels (batch_size,).
    Random draws: one main-stream word at setup before the transformer's (the fork's
    DataReader thread), the mirror and crop offsets from the transformer's engine, everything
    else from the prefetch thread's stream (seeded from the main stream at setup, as Caffe's),
    the channel shuffle from the layer's own glibc rand() stream: a seeded run gives the same
    batches every time, and exact resume (recaffe.resume) restores all three streams.
    As the fork: an encoded record's image goes through JPEG (quality 95) after distortion,
    expansion and cropping; a raw record is not distorted and is expanded onto bytes of 32.
    Unlike it: raw records can be resized; noise_param is not supported (the schema does not
    read it, and the error says so).
    Params: data_param (source, batch_size, backend, prefetch), annotated_data_param
        (batch_sampler, label_map_file (not needed for training; ignored), anno_type),
        transform_param (BVLC's fields, plus the fork's resize_param, distort_param,
        expand_param, emit_constraint, crop_h, crop_w).
    Bottoms: none. Tops: data (N, C, H, W), optional label.
    """

    min_top_blobs = 1
    max_top_blobs = 2

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        rng.get_rng().rand()  # the fork's DataReader starts its reading thread first (one word)
        super().layer_setup(bottom, top)

    def data_layer_setup(self, top: Blobs) -> AnnotatedReader:
        fork = forks.get_dialect("ssd").fork_param(self.param)
        t, p = fork.transform_param, fork.annotated_data_param
        self._check(t)
        batch_size = self.positive_batch_size(self.param.data_param.batch_size, "data_param")
        if (
            t.HasField("resize_param")
            and t.resize_param.resize_mode == t.resize_param.FIT_SMALL_SIZE
            and batch_size != 1
        ):
            raise self.error("resize_param FIT_SMALL_SIZE needs data_param.batch_size 1 (as in the fork)")
        source, backend = self.param.data_param.source, self.param.data_param.backend
        with db.open_db(source, backend, "read").closed_on_error() as database:
            reader = AnnotatedReader(
                database,
                self.transformer,
                t,
                p,
                batch_size,
                self.output_labels,
                distributed.data_shard(self.phase),
            )
            shape = reader.item_shape()
            first, _ = reader.current_annotated()
        top[0].reshape((batch_size, *shape))
        log.info("output data size: %d,%d,%d,%d", batch_size, *shape)
        if self.output_labels:
            if reader.has_anno_type(first):
                boxes = sum(len(g.annotation) for g in first.annotation_group)
                top[1].reshape((1, 1, max(boxes, 1), 8))
            else:
                top[1].reshape((batch_size,))
        return reader

    def _check(self, t: Any) -> None:
        crop = self.param.transform_param.crop_size
        if crop and (t.crop_h or t.crop_w):
            raise self.error("transform_param: give crop_size or crop_h/crop_w, not both")
        if bool(t.crop_h) != bool(t.crop_w):
            raise self.error("transform_param: give both crop_h and crop_w")
        if t.HasField("resize_param"):
            r = t.resize_param
            if r.height <= 0 or r.width <= 0:
                raise self.error("transform_param.resize_param needs height and width > 0")
        if t.HasField("expand_param") and t.expand_param.max_expand_ratio <= 1:
            raise self.error("transform_param.expand_param.max_expand_ratio must be > 1")
        if self.param.transform_param.HasField("mean_file") and t.HasField("expand_param"):
            raise self.error("expand_param with mean_file is not supported by recaffe (use mean_value)")
