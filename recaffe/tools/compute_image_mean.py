"""``compute_image_mean``: the mean image of a database (tools/compute_image_mean.cpp)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from recaffe.data import DataError, db
from recaffe.data.datum import datum_array, parse_datum
from recaffe.io import binaryproto
from recaffe.tools.progress import track

log = logging.getLogger(__name__)


def compute_image_mean(input_db: str, output_file: str | None = None, backend: str = "lmdb") -> np.ndarray:
    """The (C, H, W) float32 mean of every Datum in ``input_db``; written as a BlobProto if asked.

    Encoded datums are decoded with their own channels. Sums are kept in float32 and divided by
    the count in float32, as Caffe's BlobProto arithmetic does; the per-channel means are logged.
    """
    with db.open_db(input_db, backend) as database:
        cursor = database.cursor()
        if not cursor.valid:
            raise DataError(f"the {database.where} is empty")
        total = np.zeros(0, dtype=np.float32)
        count = 0
        for key in track(_keys(cursor), None, "compute_image_mean", every=10000):
            values = datum_array(parse_datum(cursor.value(), f"record {key!r}"), "native", f"record {key!r}")
            if count == 0:
                total = np.zeros(values.shape, dtype=np.float32)
            if values.size != total.size:
                raise DataError(
                    f"record {key!r}: incorrect data field size {values.size} (expected {total.size})")
            total += values.reshape(total.shape).astype(np.float32)
            count += 1
    mean = (total / np.float32(count)).astype(np.float32)
    if output_file:
        log.info("Write to %s", output_file)
        binaryproto.write_mean(output_file, mean)
    log.info("Number of channels: %d", mean.shape[0])
    for c, channel in enumerate(mean):
        channel_sum = np.cumsum(channel.reshape(-1), dtype=np.float32)[-1]  # float, in order, as Caffe
        log.info("mean_value channel [%d]: %g", c, channel_sum / np.float32(channel.size))
    return mean


def _keys(cursor: db.Cursor) -> Iterator[str]:
    while cursor.valid:
        yield cursor.key().decode(errors="replace")
        cursor.next()
