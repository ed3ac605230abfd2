"""``convert_imageset``: images named in a list file -> a database of Datums (tools/convert_imageset.cpp)."""

from __future__ import annotations

import logging

from recaffe import rng
from recaffe.data import DataError, db
from recaffe.data.datum import read_image_to_datum
from recaffe.data.readers import read_image_list
from recaffe.tools.progress import track

log = logging.getLogger(__name__)


def convert_imageset(root_folder: str, list_file: str, db_name: str, *, gray: bool = False,
                     shuffle: bool = False, backend: str = "lmdb", resize_width: int = 0,
                     resize_height: int = 0, check_size: bool = False, encoded: bool = False,
                     encode_type: str = "") -> int:
    """Write one Datum per readable image of ``list_file`` into a new database; returns the count.

    Lines are ``<path> <label>`` (split at the last space); images are read from
    ``root_folder + path`` in colour (BGR) or ``gray``, resized when both sizes are positive, and
    stored raw (CHW) or, with ``encoded``/``encode_type``, as image files (the original bytes when
    nothing changes them; ``encode_type`` defaults to the file's extension). Keys are
    ``%08d_<path>`` with the line's position (after the optional shuffle, which uses Caffe's main
    random stream: call ``recaffe.set_random_seed`` first to repeat it). Unreadable images are
    logged and skipped, as Caffe does. ``check_size`` requires every raw datum to have the first
    one's size.
    """
    lines = read_image_list(list_file)
    if shuffle:
        log.info("Shuffling data")
        rng.get_rng().shuffle(lines)
    log.info("A total of %d images.", len(lines))
    if encode_type and not encoded:
        log.info("encode_type specified, assuming encoded=true.")
    height, width = max(0, resize_height), max(0, resize_width)
    data_size = None
    with db.Writer(db_name, backend) as writer:
        for line_id, (path, label) in enumerate(track(lines, len(lines), "convert_imageset")):
            encoding = encode_type or (path.rsplit(".", 1)[-1].lower() if encoded else "")
            try:
                datum = read_image_to_datum(root_folder + path, label, height, width, not gray, encoding)
            except DataError as e:
                log.error("%s; skipping it", e)
                continue
            if check_size and not datum.encoded:
                if data_size is None:
                    data_size = datum.channels * datum.height * datum.width
                elif len(datum.data) != data_size:
                    raise DataError(f"incorrect data field size {len(datum.data)} for {path!r} "
                                    f"(the first image has {data_size}; check_size is on)")
            writer.put(f"{line_id:08d}_{path}", datum.SerializeToString())
        count = writer.count
    log.info("Processed %d files.", count)
    return count
