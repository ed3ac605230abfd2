"""SSD's ``create_annoset``: a database of AnnotatedDatum records (images with boxes) from a list
of ``<image> <label file>`` lines, for the AnnotatedData layer.

Label files are ``txt`` (the fork's: one box per line, ``label xmin ymin xmax ymax`` in pixels),
``xml`` (PASCAL VOC: ``object/name`` looked up in a LabelMap prototxt, ``difficult``,
``bndbox``; sizes from ``size/width,height``) or ``json`` (the fork's COCO files:
``image.width/height``, ``annotation[]`` with ``category_id`` looked up in the LabelMap,
``bbox`` [x, y, w, h] and ``iscrowd`` as difficult). Boxes are stored normalized by the image size,
one AnnotationGroup per label in order of first appearance, instance ids counting up within a
group, as the fork's ReadTxtToAnnotatedDatum/ReadXMLToAnnotatedDatum. A missing label file gives
a record without boxes. Images are stored encoded (the file's own bytes, or re-encoded as
``encode_type``) or raw; keys are ``%08d_<image path>``.
"""

from __future__ import annotations

import json
import logging
import os
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np

from recaffe import rng
from recaffe.data import DataError, db, image
from recaffe.data.datum import read_image_to_datum
from recaffe.forks.ssd import caffe_ssd_pb2
from recaffe.io import prototxt

log = logging.getLogger(__name__)
LABEL_TYPES = ("txt", "xml", "json")


def read_list(path: str) -> list[tuple[str, str]]:
    """The list file: ``<image path> <label file path>`` per line."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise DataError(
                    f"{path}:{number}: expected '<image path> <label file>', got {line.strip()!r}"
                )
            pairs.append((parts[0], parts[1]))
    if not pairs:
        raise DataError(f"the list {path!r} is empty")
    return pairs


def read_label_map(path: str) -> dict[str, int]:
    """A LabelMap prototxt (``item { name: "cat" label: 8 }``) as name -> label."""
    label_map = prototxt.read_text(path, caffe_ssd_pb2.LabelMap())
    return {item.name: item.label for item in label_map.item}


def _add_box(item: Any, label: int, box: tuple[Any, Any, Any, Any], difficult: bool) -> None:
    group = next((g for g in item.annotation_group if g.group_label == label), None)
    if group is None:
        group = item.annotation_group.add(group_label=label)
    instance = group.annotation[-1].instance_id + 1 if len(group.annotation) else 0
    anno = group.annotation.add(instance_id=instance)
    anno.bbox.xmin, anno.bbox.ymin, anno.bbox.xmax, anno.bbox.ymax = box
    anno.bbox.difficult = difficult


def read_txt_boxes(path: str, height: int, width: int, item: Any) -> None:
    f32 = np.float32
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                label, x0, y0, x1, y1 = int(parts[0]), *(f32(v) for v in parts[1:5])
                if len(parts) != 5:
                    raise ValueError
            except (ValueError, IndexError):
                raise DataError(
                    f"{path}:{number}: expected 'label xmin ymin xmax ymax', got {line.strip()!r}"
                ) from None
            if min(x0, y0, x1, y1) < 0 or max(x0, x1) > width or max(y0, y1) > height or x0 > x1 or y0 > y1:
                log.warning("%s:%d: bounding box exceeds the image or is irregular", path, number)
            _add_box(
                item, label, (x0 / f32(width), y0 / f32(height), x1 / f32(width), y1 / f32(height)), False
            )


def read_xml_boxes(path: str, height: int, width: int, names: dict[str, int], item: Any) -> None:
    root = ET.parse(path).getroot()
    size = root.find("size")
    if size is not None and size.findtext("width") and size.findtext("height"):
        w, h = int(size.findtext("width", "0")), int(size.findtext("height", "0"))
        if (w, h) != (width, height):
            log.warning("%s: size %dx%d differs from the image's %dx%d", path, w, h, width, height)
        width, height = w, h
    if not width or not height:
        raise DataError(f"{path}: no valid image width/height")
    f32 = np.float32
    for obj in root.iter("object"):
        name = obj.findtext("name", "")
        if name not in names:
            raise DataError(f"{path}: unknown name {name!r} (not in the label map)")
        box = obj.find("bndbox")
        if box is None:
            raise DataError(f"{path}: object {name!r} has no bndbox")
        x0, y0, x1, y1 = (f32(box.findtext(k, "nan")) for k in ("xmin", "ymin", "xmax", "ymax"))
        box_n = (x0 / f32(width), y0 / f32(height), x1 / f32(width), y1 / f32(height))
        _add_box(item, names[name], box_n, obj.findtext("difficult", "0").strip() == "1")


def read_json_boxes(path: str, height: int, width: int, names: dict[str, int], item: Any) -> None:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read the json label file {path!r}: {e}") from e
    size = doc.get("image", {})
    if "width" in size and "height" in size:
        given_w, given_h = int(size["width"]), int(size["height"])
        if (given_w, given_h) != (width, height):
            log.warning("%s: size %dx%d differs from the image's %dx%d", path, given_w, given_h, width,
                        height)
        width, height = given_w, given_h
    if not width or not height:
        raise DataError(f"{path}: no valid image width/height")
    f32 = np.float32
    for number, obj in enumerate(doc.get("annotation", [])):
        name = str(obj.get("category_id"))
        if name not in names:
            raise DataError(f"{path}: annotation {number}: category_id {name!r} is not in the label map")
        box = obj.get("bbox", [])
        if len(box) != 4:
            raise DataError(f"{path}: annotation {number}: bbox must be [x, y, width, height], got {box!r}")
        x, y, w, h = (f32(v) for v in box)
        normalized = (x / f32(width), y / f32(height), (x + w) / f32(width), (y + h) / f32(height))
        _add_box(item, names[name], normalized, bool(obj.get("iscrowd", 0)))


def create_annoset(
    root_folder: str,
    list_file: str,
    db_name: str,
    *,
    label_type: str = "txt",
    label_map_file: str = "",
    backend: str = "lmdb",
    encoded: bool = True,
    encode_type: str = "",
    resize_width: int = 0,
    resize_height: int = 0,
    gray: bool = False,
    shuffle: bool = False,
) -> int:
    """Write one AnnotatedDatum (type BBOX) per image of ``list_file`` into a new database; returns
    the count. Paths in the list are relative to ``root_folder`` (joined as strings, as the fork)."""
    if label_type not in LABEL_TYPES:
        raise DataError(f"label_type must be one of {', '.join(LABEL_TYPES)}, got {label_type!r}")
    if label_type != "txt" and not label_map_file:
        raise DataError(f"{label_type} label files need a label_map_file to turn names into labels")
    names = read_label_map(label_map_file) if label_type != "txt" else {}
    pairs = read_list(list_file)
    if shuffle:
        rng.get_rng().shuffle(pairs)
    with db.Writer(db_name, backend) as writer:
        for index, (image_path, label_path) in enumerate(pairs):
            path = root_folder + image_path
            encoding = (encode_type or path.rsplit(".", 1)[-1].lower()) if encoded else ""
            item = caffe_ssd_pb2.AnnotatedDatum(type=caffe_ssd_pb2.AnnotatedDatum.BBOX)
            item.datum.ParseFromString(
                read_image_to_datum(
                    path, -1, resize_height, resize_width, not gray, encoding
                ).SerializeToString()
            )
            height, width = image.read_image(path).shape[:2]
            label_file = root_folder + label_path
            if os.path.exists(label_file):
                if label_type == "txt":
                    read_txt_boxes(label_file, height, width, item)
                elif label_type == "xml":
                    read_xml_boxes(label_file, height, width, names, item)
                else:
                    read_json_boxes(label_file, height, width, names, item)
            writer.put(f"{index:08d}_{image_path}", item.SerializeToString())
        count = writer.count
    log.info("Processed %d files.", count)
    return count
