"""Bases of the data layers: DataSourceLayer (helpers), BaseDataLayer (transformer, labels) and
BasePrefetchingDataLayer (background thread)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import ClassVar

import numpy as np
import torch

from recaffe import rng
from recaffe.blob import Blob
from recaffe.data import DataError
from recaffe.data.prefetch import BatchLoader, Prefetcher
from recaffe.data.transformer import DataTransformer
from recaffe.layer import Blobs, Layer
from recaffe.proto import caffe_pb2


class DataSourceLayer(Layer):
    """A layer with no bottoms that fills its tops itself (HDF5Data, the data layers, DummyData).

    Data layers reshape their tops in ``forward``, so ``reshape`` does nothing, and so does
    ``backward``. Helpers: ``data_errors()`` re-raises problems with the data as errors naming the
    layer; ``numpy_dtype`` is the net's dtype for numpy-side work.
    """

    exact_num_bottom_blobs = 0

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        pass

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        pass

    @property
    def numpy_dtype(self) -> type[np.floating]:
        return np.float64 if self.dtype == torch.float64 else np.float32

    @contextlib.contextmanager
    def data_errors(self) -> Iterator[None]:
        try:
            yield
        except DataError as e:
            raise self.error(str(e)) from e

    def positive_batch_size(self, batch_size: int, field: str) -> int:
        if batch_size <= 0:
            raise self.error(f"{field}.batch_size must be positive, got {batch_size}")
        return batch_size


class BaseDataLayer(DataSourceLayer):
    """A data layer with a DataTransformer and optional labels (Caffe's BaseDataLayer).

    Setup: ``output_labels`` is true iff there are 2 tops; a DataTransformer is built from
    ``transform_param`` and its ``init_rand`` runs (one main-stream word when it needs an engine);
    then the subclass' ``data_layer_setup`` shapes the tops.
    """

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        self.output_labels = len(top) != 1
        with self.data_errors():
            self.transformer = DataTransformer(self.param.transform_param, self.phase, self.numpy_dtype)
            self.transformer.init_rand()
            self.loader = self.data_layer_setup(top)

    def data_layer_setup(self, top: Blobs) -> BatchLoader | None:
        """Read the layer's parameters and shape the tops; prefetching layers return their loader."""
        raise NotImplementedError


class BasePrefetchingDataLayer(BaseDataLayer):
    """A data layer whose batches are loaded ahead in a thread (Caffe's BasePrefetchingDataLayer).

    After ``data_layer_setup``, the transformer's ``init_rand`` runs again (the engine it makes is
    the one used; the first one is discarded, as in Caffe), then one more main-stream word is drawn
    for the prefetch thread's own stream (handed to the loader's ``seed_thread`` when it has one,
    as SSD's AnnotatedData), and the thread starts on the subclass' loader, keeping
    ``data_param.prefetch`` (default 4) batches ready. Forward takes the next batch, reshapes the
    tops to it, and copies it to the tops' device. ``draws_thread_seed = False``: a layer from a
    fork whose older Caffe draws no word for the thread (its thread shares the main stream).
    """

    draws_thread_seed: ClassVar[bool] = True

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        super().layer_setup(bottom, top)
        self.transformer.init_rand()
        if self.loader is None:
            raise RuntimeError(f"{self.describe()}: data_layer_setup must return a batch loader")
        if self.draws_thread_seed:
            thread_seed = rng.get_rng().rand()  # seeds the prefetch thread's own stream in Caffe
            seed_thread = getattr(self.loader, "seed_thread", None)  # loaders that draw from that stream
            if seed_thread is not None:
                seed_thread(thread_seed)
        self.resume_point = self.loader.resume_point()  # where reading starts (exact resume)
        self.prefetcher = Prefetcher(self.loader, self.param.data_param.prefetch, self.name)
        self.prefetcher.bind(self)
        self.loader = None  # from here on only the prefetch thread touches it

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        with self.data_errors():
            batch = self.prefetcher.next()
        if batch.resume is not None:
            self.resume_point = batch.resume
        copy_into(top[0], batch.data)
        if self.output_labels and batch.label is not None:
            copy_into(top[1], batch.label)


    def save_resume_state(self, out: caffe_pb2.RecaffeDataState) -> None:
        """Where the next batch handed out comes from (``recaffe.resume``)."""
        self.resume_point(out)

    def load_resume_state(self, state: caffe_pb2.RecaffeDataState) -> None:
        """Read on from ``state``; batches loaded ahead are dropped and loaded again from there."""
        with self.data_errors():
            self.prefetcher.restart(lambda loader: loader.load_state(state, self.describe()))
        saved = caffe_pb2.RecaffeDataState()
        saved.CopyFrom(state)
        self.resume_point = lambda out: out.MergeFrom(saved)


def copy_into(blob: Blob, values: np.ndarray) -> None:
    """Reshape ``blob`` to ``values`` and copy them in (onto the blob's device)."""
    blob.reshape(values.shape)
    blob.data.copy_(torch.from_numpy(values))
