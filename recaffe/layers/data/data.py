from __future__ import annotations

import logging
from typing import final

from recaffe import distributed
from recaffe.data import db
from recaffe.data.readers import DatumReader
from recaffe.layer import Blobs
from recaffe.layers.data.base import BasePrefetchingDataLayer
from recaffe.registry import LAYERS

log = logging.getLogger(__name__)


@LAYERS.register("Data")
@final
class DataLayer(BasePrefetchingDataLayer):
    """Serialized Datums from an LMDB or LevelDB database, transformed, in batches.

    Records are read in key order and the cursor wraps to the first record after the last. Each
    batch takes its shape from its first Datum (so sizes may change between batches); every Datum
    goes through the DataTransformer (see ``recaffe.data.transformer``), and its ``label`` goes to
    the label top. In a distributed TRAIN net, rank r of N keeps records r, r+N, r+2N, ... of the
    endless record sequence (Caffe's ``Skip``). Batches are prefetched in a background thread;
    the numbers do not depend on it.
    Backward: none.
    Params (data_param): source (database path), batch_size (required), backend=LEVELDB (as in
        Caffe; LMDB needs ``backend: LMDB``), prefetch=4; rand_skip and the deprecated
        scale/mean_file/crop_size/mirror are ignored here (the net upgrade moves the latter into
        transform_param). transform_param: see DataTransformer.
    Random draws at setup (main stream): InitRand word (engine discarded), InitRand word (engine
        used), prefetch-thread word; the InitRand words only when mirror or TRAIN crop is set.
    Bottoms: none.
    Tops: data (batch_size, C, H, W) with H, W = crop_size when cropping; label (batch_size,) when
        there are 2 tops.
    In place: not applicable.
    """

    min_top_blobs = 1
    max_top_blobs = 2

    def data_layer_setup(self, top: Blobs) -> DatumReader:
        p = self.param.data_param
        batch_size = self.positive_batch_size(p.batch_size, "data_param")
        with db.open_db(p.source, p.backend, "read").closed_on_error() as database:
            reader = DatumReader(database, self.transformer, batch_size, self.output_labels,
                                 distributed.data_shard(self.phase))
            shape = reader.item_shape()
        top[0].reshape((batch_size, *shape))
        log.info("output data size: %d,%d,%d,%d", batch_size, *shape)
        if self.output_labels:
            top[1].reshape((batch_size,))
        return reader
