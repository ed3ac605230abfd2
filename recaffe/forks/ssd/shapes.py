"""A small generated detection dataset: squares and discs drawn on noisy backgrounds, boxes known.

``make_shapes(folder, count, size, seed)`` writes ``images/NNNN.png``, ``labels/NNNN.txt`` (the
fork's txt boxes: ``label xmin ymin xmax ymax`` in pixels; label 1 square, 2 disc), ``list.txt``
(``<image> <label file>`` lines for ``create_annoset``) and ``labelmap.prototxt``. The same
arguments give the same files, byte for byte (numpy's seeded PCG64). ``make_shapes_lmdb`` also
builds the AnnotatedDatum LMDB from them. For tests and for trying SSD training end to end.
"""

from __future__ import annotations

import os

import numpy as np

from recaffe.data import image
from recaffe.forks.ssd.annoset import create_annoset

CLASSES = ("background", "square", "disc")


def _draw(canvas: np.ndarray, label: int, x0: int, y0: int, side: int, color: np.ndarray) -> None:
    if label == 1:
        canvas[y0 : y0 + side, x0 : x0 + side] = color
        return
    yy, xx = np.mgrid[0:side, 0:side]
    radius = side / 2
    inside = (yy + 0.5 - radius) ** 2 + (xx + 0.5 - radius) ** 2 <= radius**2
    canvas[y0 : y0 + side, x0 : x0 + side][inside] = color


def make_shapes(folder: str, count: int = 64, size: int = 48, seed: int = 0, max_objects: int = 2) -> str:
    """Write the dataset under ``folder`` (see the module docstring); returns the list file's path."""
    gen = np.random.default_rng(seed)
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    os.makedirs(os.path.join(folder, "labels"), exist_ok=True)
    lines = []
    for index in range(count):
        canvas = gen.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
        boxes: list[tuple[int, int, int, int, int]] = []
        for _ in range(int(gen.integers(1, max_objects + 1))):
            label = int(gen.integers(1, len(CLASSES)))
            side = int(gen.integers(size // 4, size // 2 + 1))
            for _attempt in range(20):  # a place not overlapping the boxes drawn so far
                x0, y0 = int(gen.integers(0, size - side + 1)), int(gen.integers(0, size - side + 1))
                if all(x0 >= b[3] or x0 + side <= b[1] or y0 >= b[4] or y0 + side <= b[2] for b in boxes):
                    break
            else:
                continue
            color = gen.integers(120, 256, size=3, dtype=np.uint8)
            _draw(canvas, label, x0, y0, side, color)
            boxes.append((label, x0, y0, x0 + side, y0 + side))
        name = f"{index:04d}"
        with open(os.path.join(folder, "images", f"{name}.png"), "wb") as f:
            f.write(image.encode_image(canvas, "png"))
        with open(os.path.join(folder, "labels", f"{name}.txt"), "w", encoding="utf-8") as f:
            f.writelines(f"{label} {x0} {y0} {x1} {y1}\n" for label, x0, y0, x1, y1 in boxes)
        lines.append(f"images/{name}.png labels/{name}.txt\n")
    list_file = os.path.join(folder, "list.txt")
    with open(list_file, "w", encoding="utf-8") as f:
        f.writelines(lines)
    with open(os.path.join(folder, "labelmap.prototxt"), "w", encoding="utf-8") as f:
        f.writelines(
            f'item {{ name: "{name}" label: {label} display_name: "{name}" }}\n'
            for label, name in enumerate(CLASSES)
        )
    return list_file


def make_shapes_lmdb(folder: str, count: int = 64, size: int = 48, seed: int = 0) -> str:
    """``make_shapes`` plus its AnnotatedDatum LMDB (PNG-encoded images) at ``folder/lmdb``."""
    list_file = make_shapes(folder, count, size, seed)
    path = os.path.join(folder, "lmdb")
    create_annoset(folder.rstrip("/") + "/", list_file, path, label_type="txt", encoded=True)
    return path
