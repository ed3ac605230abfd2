"""Batch loaders run by the prefetching layers: Datums from a database, images from a list file.

Each loader owns its position and is driven by one thread (see ``prefetch.py``). A batch takes
its item shape from its first item, as Caffe's ``load_batch`` does, so batches may differ in size
from one another but not within.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from recaffe import resume, rng
from recaffe.data import DataError, image
from recaffe.data.datum import parse_datum
from recaffe.data.db import Database
from recaffe.data.prefetch import Batch
from recaffe.data.transformer import DataTransformer
from recaffe.proto import caffe_pb2

log = logging.getLogger(__name__)


class _BatchFiller:
    """Collects transformed items of one shape into a batch array (plus labels)."""

    def __init__(self, batch_size: int, item_shape: tuple[int, ...], dtype: type, labels: bool) -> None:
        self.data: np.ndarray = np.empty((batch_size, *item_shape), dtype=dtype)
        self.label: np.ndarray | None = np.empty(batch_size, dtype=dtype) if labels else None

    def put(self, index: int, values: np.ndarray, label: int, where: str) -> None:
        if values.shape != self.data.shape[1:]:
            raise DataError(f"{where} gives an item of shape {values.shape}, but this batch's first item "
                            f"has shape {self.data.shape[1:]} (sizes may change only between batches)")
        self.data[index] = values
        if self.label is not None:
            self.label[index] = label

    def batch(self) -> Batch:
        return Batch(self.data, self.label)


class DatumReader:
    """Transformed Datums from a database in key order, wrapping to the first record at the end.

    With ``shard=(rank, count)`` (a distributed run, see ``recaffe.distributed.data_shard``) it
    keeps only the records whose running read position ``offset`` has ``offset % count == rank``,
    as Caffe's ``DataLayer::Skip``: the ranks share each round of ``count`` records.
    """

    def __init__(self, database: Database, transformer: DataTransformer, batch_size: int,
                 labels: bool, shard: tuple[int, int] | None = None) -> None:
        self.database = database
        self.transformer = transformer
        self.batch_size = batch_size
        self.labels = labels
        self.shard = shard
        self.offset = 0
        self._cursor = database.cursor()
        if not self._cursor.valid:
            raise DataError(f"the {database.where} is empty")

    def current(self) -> tuple[caffe_pb2.Datum, str]:
        """The record under the cursor and a description of it for error messages."""
        key = self._cursor.key()
        where = f"record {key.decode(errors='replace')!r} of the {self.database.where}"
        return parse_datum(self._cursor.value(), where), where

    def item_shape(self) -> tuple[int, int, int]:
        """The transformed shape of the record under the cursor (Caffe's InferBlobShape)."""
        datum, where = self.current()
        return self.transformer.output_shape(self.transformer.datum_values(datum, where).shape)

    def load_batch(self) -> Batch:
        self._skip_other_ranks()
        datum, where = self.current()
        values = self.transformer.datum_values(datum, where)
        filler = _BatchFiller(self.batch_size, self.transformer.output_shape(values.shape),
                              self.transformer.dtype, self.labels)
        for index in range(self.batch_size):
            if index:
                datum, where = self.current()
                values = self.transformer.datum_values(datum, where)
            filler.put(index, self.transformer.transform(values), datum.label, where)
            self._next()
            self._skip_other_ranks()
        return filler.batch()

    def resume_point(self) -> resume.ResumePoint:
        key, offset, transform = self._cursor.key(), self.offset, self.transformer.resume_point()

        def write(out: caffe_pb2.RecaffeDataState) -> None:
            out.cursor_key, out.offset = key, offset
            transform(out)

        return write

    def load_state(self, state: caffe_pb2.RecaffeDataState, where: str) -> None:
        self._cursor.seek(state.cursor_key)
        if not self._cursor.valid or self._cursor.key() != state.cursor_key:
            log.warning("%s: record %r, where the snapshot left off, is not in the %s any more; reading "
                        "on from the next record", where, state.cursor_key.decode(errors="replace"),
                        self.database.where)
            if not self._cursor.valid:
                self._cursor.seek_to_first()
        self.offset = state.offset
        self.transformer.load_state(state, where)

    def _next(self) -> None:
        self._cursor.next()
        if not self._cursor.valid:
            self._cursor.seek_to_first()
        self.offset += 1

    def _skip_other_ranks(self) -> None:
        if self.shard is not None:
            rank, count = self.shard
            while self.offset % count != rank:
                self._next()

    def close(self) -> None:
        self.database.close()


def list_file_lines(source: str) -> list[tuple[int, str]]:
    """A list file's non-blank lines with their 1-based numbers; unreadable or non-UTF-8 files are errors."""
    try:
        with open(source, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise DataError(f"cannot open the image list {source!r}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise DataError(f"the image list {source!r} is not UTF-8 text (byte {e.start})") from e
    lines = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise DataError(f"the image list {source!r} is empty")
    return lines


def list_order(count: int, shuffle: bool, rand_skip: int,
               too_few: Callable[[int], Exception]) -> tuple[list[int], rng.CaffeRNG | None, int]:
    """How ImageData walks a list file of ``count`` lines: the order (shuffled, when ``shuffle``, by
    a stream seeded with one word of Caffe's, also returned), and the line to start at
    (``rand() % rand_skip``, a second word); ``too_few(start)`` is raised when the list is shorter."""
    order = list(range(count))
    shuffle_rng = None
    if shuffle:
        shuffle_rng = rng.CaffeRNG(rng.get_rng().rand())
        shuffle_rng.shuffle(order)
    start = 0
    if rand_skip:
        start = rng.get_rng().rand() % rand_skip
        if start >= count:
            raise too_few(start)
    return order, shuffle_rng, start


def read_image_list(source: str) -> list[tuple[str, int]]:
    """ImageData's list file: each line is ``<path> <int label>``, split at the last space."""
    lines = []
    for number, line in list_file_lines(source):
        path, space, label = line.rpartition(" ")
        try:
            if not space or not path:
                raise ValueError
            lines.append((path, int(label)))
        except ValueError:
            raise DataError(
                f"{source}:{number}: expected '<image path> <integer label>', got {line!r}") from None
    return lines


class ImageListReader:
    """Images named by a list file, transformed, in list order (reshuffled every epoch if asked)."""

    def __init__(self, lines: list[tuple[str, int]], order: list[int], param: caffe_pb2.ImageDataParameter,
                 transformer: DataTransformer, shuffle_rng: rng.CaffeRNG | None, start: int) -> None:
        self.lines = lines  # as the list file gives them
        self.order = order  # the lines' current (shuffled) order
        self.param = param
        self.transformer = transformer
        self.shuffle_rng = shuffle_rng
        self.position = start

    def entry(self, index: int) -> tuple[str, int]:
        """The path and label at ``index`` of the current order."""
        return self.lines[self.order[index]]

    def read(self, index: int) -> np.ndarray:
        """The image of list entry ``index``: ``root_folder + path`` (plain concatenation, as Caffe)."""
        p = self.param
        return image.read_image(p.root_folder + self.entry(index)[0], p.new_height, p.new_width, p.is_color)

    def resume_point(self) -> resume.ResumePoint:
        # ``order`` is replaced, never changed in place, so keeping a reference is enough
        position, order, transform = self.position, self.order, self.transformer.resume_point()
        shuffle = self.shuffle_rng.get_state() if self.shuffle_rng is not None else None

        def write(out: caffe_pb2.RecaffeDataState) -> None:
            out.position = position
            out.order[:] = order
            if shuffle is not None:
                resume.write_rng(shuffle, out.shuffle_rng)
            transform(out)

        return write

    def load_state(self, state: caffe_pb2.RecaffeDataState, where: str) -> None:
        if sorted(state.order) != list(range(len(self.lines))) or not 0 <= state.position < len(self.lines):
            raise DataError(f"{where}: the solver state's position in the image list does not fit the "
                            f"{len(self.lines)} images of {self.param.source!r}; the list changed since "
                            f"the snapshot")
        self.position, self.order = state.position, list(state.order)
        if self.shuffle_rng is not None:
            self.shuffle_rng = resume.load_rng(state.shuffle_rng, where)
        self.transformer.load_state(state, where)

    def item_shape(self, img: np.ndarray | None = None) -> tuple[int, int, int]:
        """The transformed shape of an (H, W, C) image, by default the one at the current position."""
        img = self.read(self.position) if img is None else img
        return self.transformer.output_shape((img.shape[2], *img.shape[:2]))

    def load_batch(self) -> Batch:
        first = self.read(self.position)
        filler = _BatchFiller(self.param.batch_size, self.item_shape(first), self.transformer.dtype,
                              labels=True)
        for index in range(self.param.batch_size):
            img = first if index == 0 else self.read(self.position)
            path, label = self.entry(self.position)
            filler.put(index, self.transformer.transform_image(img), label, f"image {path!r}")
            self.position += 1
            if self.position >= len(self.lines):
                self.position = 0
                if self.shuffle_rng is not None:
                    self.order = list(self.order)  # a new list: resume points keep the old one
                    self.shuffle_rng.shuffle(self.order)
        return filler.batch()
