"""``extract_features``: blobs of a trained net -> databases of float Datums (tools/extract_features.cpp)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

import numpy as np

from recaffe import device
from recaffe.blob import Blob
from recaffe.data import db
from recaffe.data.datum import array_to_datum
from recaffe.net import TEST, Net
from recaffe.tools.progress import track

log = logging.getLogger(__name__)


def extract_features(pretrained_net_param: str, feature_extraction_proto_file: str,
                     blob_names: Sequence[str], dataset_names: Sequence[str], num_mini_batches: int,
                     db_type: str = "lmdb", mode: str = "CPU", device_id: int = 0) -> list[int]:
    """Run ``num_mini_batches`` TEST forwards and store each item of each named blob.

    Blob ``blob_names[i]`` goes to the new database ``dataset_names[i]``: per item, a Datum with
    the blob's legacy (channels, height, width) and the item's values as ``float_data``, under the
    key ``%010d`` (the item's index). Returns the number of items written per blob.
    """
    if len(blob_names) != len(dataset_names):
        raise ValueError(f"the number of blob names ({len(blob_names)}) and dataset names "
                         f"({len(dataset_names)}) must be equal")
    device.use_device([device_id] if mode.upper() == "GPU" else [])
    net = Net(feature_extraction_proto_file, TEST, weights_file=pretrained_net_param)
    for name in blob_names:
        if not net.has_blob(name):
            raise ValueError(
                f"unknown feature blob name {name!r} in the network {feature_extraction_proto_file!r}")
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(db.Writer(name, db_type)) for name in dataset_names]
        for _ in track(range(num_mini_batches), num_mini_batches, "extract_features", every=10):
            net.forward()
            for name, writer in zip(blob_names, writers):
                _store(net.blob_by_name(name), writer)
    for name, writer in zip(blob_names, writers):
        log.info("Extracted features of %d query images for feature blob %s", writer.count, name)
    return [writer.count for writer in writers]


def _store(blob: Blob, writer: db.Writer) -> None:
    values = blob.data.detach().cpu().numpy().astype(np.float32).reshape(blob.num, -1)
    shape = (blob.channels, blob.height, blob.width)
    for item in values:
        datum = array_to_datum(item.reshape(shape))
        writer.put(f"{writer.count:010d}", datum.SerializeToString())
