"""A generated detection data set: coloured shapes drawn on noisy images, boxes known."""

from __future__ import annotations

from typing import Any

import numpy as np

# BGR colour of each class (1 rectangle, 2 disc, 3 cross)
COLOURS = {1: (40, 40, 220), 2: (40, 200, 40), 3: (220, 60, 40)}


def draw(image: np.ndarray, cls: int, box: tuple[int, int, int, int]) -> None:
    x1, y1, x2, y2 = box
    ys, xs = np.mgrid[y1:y2 + 1, x1:x2 + 1]
    if cls == 1:
        mask = np.ones_like(xs, dtype=bool)
    elif cls == 2:
        cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1 + 1) / 2, (y2 - y1 + 1) / 2
        mask = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1
    else:
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        mask = (np.abs(xs - cx) <= (x2 - x1) / 6) | (np.abs(ys - cy) <= (y2 - y1) / 6)
    region = image[y1:y2 + 1, x1:x2 + 1]
    region[mask] = COLOURS[cls]


def roidb(count: int, size: int = 128, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` images (size×size BGR uint8) with 1-2 shapes of 24-56 pixels each, as
    py-faster-rcnn roidb entries ('image' as an array)."""
    random = np.random.RandomState(seed)
    entries = []
    for _ in range(count):
        image = (random.randint(0, 30, size=(size, size, 3)) + 100).astype(np.uint8)
        boxes, classes = [], []
        for _ in range(random.randint(1, 3)):
            w, h = random.randint(24, 57, size=2)
            x1, y1 = random.randint(0, size - w), random.randint(0, size - h)
            cls = int(random.randint(1, 4))
            box = (int(x1), int(y1), int(x1 + w - 1), int(y1 + h - 1))
            draw(image, cls, box)
            boxes.append(box)
            classes.append(cls)
        entries.append({"image": image, "boxes": np.array(boxes, dtype=np.float32),
                        "gt_classes": np.array(classes, dtype=np.int32), "flipped": False,
                        "height": size, "width": size})
    return entries
