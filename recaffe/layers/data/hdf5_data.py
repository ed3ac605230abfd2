from __future__ import annotations

from typing import final

import numpy as np

from recaffe import distributed
from recaffe.data import hdf5
from recaffe.data.crand import random_shuffle
from recaffe.layer import Blobs
from recaffe.layers.data.base import DataSourceLayer, copy_into
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS


@LAYERS.register("HDF5Data")
@final
class HDF5DataLayer(DataSourceLayer):
    """Rows of HDF5 datasets, one dataset per top, named like the top.

    ``source`` is a text file listing .h5 files (whitespace-separated; relative paths are relative
    to the working directory, as in Caffe). Each file's datasets (N-D, integer or float, converted
    to the net's dtype) must share dim 0. Rows are read in order, then the next file is loaded;
    after the last file the first comes again. In a distributed TRAIN net, rank r of N keeps rows
    r, r+N, r+2N, ... of that endless sequence (Caffe's ``Skip``). With ``shuffle``, the file order
    is permuted at setup and at each wrap, and the row order whenever a file is loaded and again
    when its rows run out, all with ``std::random_shuffle`` on glibc's process-wide ``rand()``
    (never seeded by Caffe, independent of ``set_random_seed``), so the permutations match Caffe's.
    Backward: none.
    Params (hdf5_data_param): source, batch_size, shuffle=false. transform_param is refused.
    Bottoms: none.
    Tops: >= 1; top i is (batch_size, *dataset_i.shape[1:]).
    In place: not applicable.
    """

    min_top_blobs = 1

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        if self.param.HasField("transform_param"):
            raise self.error("HDF5Data does not transform data; remove transform_param")
        p = self.param.hdf5_data_param
        self.batch_size = self.positive_batch_size(p.batch_size, "hdf5_data_param")
        self.names = list(self.param.top)[: len(top)]
        if len(self.names) != len(top):
            raise self.error("HDF5Data needs its top names (they name the datasets to read)")
        self.row_shapes: list[tuple[int, ...]] | None = None
        self.rows: list[int] = []
        self.shard = distributed.data_shard(self.phase) or (0, 1)
        self.offset = 0
        with self.data_errors():
            self.filenames = hdf5.read_source_list(p.source)
            self.file_order = list(range(len(self.filenames)))
            if p.shuffle:
                random_shuffle(self.file_order)
            self.current_file = 0
            self._load(self.file_order[0])
        shapes: list[tuple[int, ...]] = self.row_shapes or []  # set by _load
        for blob, shape in zip(top, shapes):
            blob.reshape((self.batch_size, *shape))

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        outs = [np.empty((self.batch_size, *a.shape[1:]), dtype=a.dtype) for a in self.arrays]
        rank, count = self.shard
        filled = 0
        while filled < self.batch_size:
            # this rank's rows left in the file: every count-th from the first with offset ≡ rank
            first = (rank - self.offset) % count
            left = len(self.rows) - self.current_row
            n = min(self.batch_size - filled, max(0, (left - first + count - 1) // count))
            start = self.current_row + first
            rows = np.asarray(self.rows[start : start + (n - 1) * count + 1 : count], dtype=np.int64)
            for out, array in zip(outs, self.arrays):
                out[filled : filled + n] = array[rows]
            filled += n
            passed = first + (n - 1) * count + 1 if n else left  # rows read or skipped
            self.offset += passed
            self.current_row += passed - 1
            with self.data_errors():
                self._next_row()
        for blob, out in zip(top, outs):
            copy_into(blob, out)

    def save_resume_state(self, out: caffe_pb2.RecaffeDataState) -> None:
        """The file order, the current file, its row order and the next row (``recaffe.resume``)."""
        out.file, out.position, out.offset = self.current_file, self.current_row, self.offset
        out.order[:] = self.file_order
        out.rows[:] = self.rows

    def load_resume_state(self, state: caffe_pb2.RecaffeDataState) -> None:
        if sorted(state.order) != list(range(len(self.filenames))) or \
                not 0 <= state.file < len(self.filenames):
            raise self.error(f"the solver state's file order does not fit the {len(self.filenames)} files "
                             f"of {self.param.hdf5_data_param.source!r}; the list changed since the snapshot")
        self.file_order, self.current_file = list(state.order), state.file
        with self.data_errors():
            self._load(self.file_order[self.current_file])
        if sorted(state.rows) != self.rows_in_order() or not 0 <= state.position < len(self.rows):
            raise self.error(f"the solver state's row order does not fit the {len(self.rows)} rows of "
                             f"{self.filenames[self.file_order[self.current_file]]!r}; the file changed "
                             f"since the snapshot")
        self.rows, self.current_row, self.offset = list(state.rows), state.position, state.offset

    def rows_in_order(self) -> list[int]:
        return list(range(len(self.arrays[0])))

    def _load(self, index: int) -> None:
        filename = self.filenames[index]
        self.arrays = hdf5.load_datasets(filename, self.names, self.numpy_dtype)
        shapes = [a.shape[1:] for a in self.arrays]
        if self.row_shapes is not None and shapes != self.row_shapes:
            raise self.error(f"HDF5 file {filename!r} has rows of shapes {shapes}, but the first file "
                             f"loaded has {self.row_shapes}")
        if not len(self.arrays[0]):
            raise self.error(f"HDF5 file {filename!r} has no rows")
        self.row_shapes = shapes
        self.rows = self.rows_in_order()
        if self.param.hdf5_data_param.shuffle:
            random_shuffle(self.rows)
        self.current_row = 0

    def _next_row(self) -> None:
        """Caffe's Next(): step one row; at a file's end load the next file and reshuffle."""
        self.current_row += 1
        if self.current_row < len(self.rows):
            return
        shuffle = self.param.hdf5_data_param.shuffle
        if len(self.filenames) > 1:
            self.current_file += 1
            if self.current_file == len(self.filenames):
                self.current_file = 0
                if shuffle:
                    random_shuffle(self.file_order)
            self._load(self.file_order[self.current_file])
        self.current_row = 0
        if shuffle:
            random_shuffle(self.rows)
