from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from recaffe.blob import Blob as NativeBlob
from recaffe.forks.faster_rcnn import config
from recaffe.forks.faster_rcnn.python_layer import BuiltinPythonLayer, put


class RoIDataLayer(BuiltinPythonLayer):
    """Stand-in for py-faster-rcnn's ``roi_data_layer.layer.RoIDataLayer`` in its end-to-end
    mode (``cfg.TRAIN.HAS_RPN``, py-faster-rcnn's experiments/cfgs/faster_rcnn_end2end.yml).

    ``set_roidb(roidb)`` (what py-faster-rcnn's SolverWrapper calls on ``net.layers[0]``) gives
    the images: a list of dicts with 'image' (a path, read with OpenCV as BGR, or an H×W×3
    BGR array), 'boxes' (G×4, x1, y1, x2, y2 in image pixels), 'gt_classes' (G; 0 rows are
    skipped), 'flipped' (the image is mirrored; its boxes already are, as py-faster-rcnn's
    flipped roidb entries), 'width' and 'height' (for ASPECT_GROUPING).
    Forward: the next image of a shuffled order (ASPECT_GROUPING pairs landscape with landscape
        and portrait with portrait as py-faster-rcnn does; an odd one out ends the epoch),
        reshuffled when fewer than IMS_PER_BATCH + 1 remain; minus PIXEL_MEANS, scaled so its
        short side is one of TRAIN.SCALES (picked at random) and its long side at most
        MAX_SIZE (cv2.resize, linear; no resize at scale 1). Randomness: numpy on the layer's own
        stream. No backward.
    param_str: 'num_classes' (required).
    Tops: data (1×3×H×W), im_info (1×3: height, width, scale), gt_boxes (G×5: x1, y1, x2, y2,
        class, scaled).
    Not built: the Fast R-CNN mode (HAS_RPN false, precomputed proposals with 'max_classes',
    'max_overlaps' and 'bbox_targets'), and USE_PREFETCH's background process.
    """

    required = ("num_classes",)
    num_bottoms = 0
    num_tops = (3, 3)

    def layer_setup(self, bottom: list[NativeBlob], top: list[NativeBlob]) -> None:
        settings = config.current().TRAIN
        if not settings.HAS_RPN:
            raise self.fail("the built-in RoIDataLayer runs the end-to-end mode only: set "
                            "cfg.TRAIN.HAS_RPN = True (py-faster-rcnn's faster_rcnn_end2end.yml, or "
                            "recaffe.forks.faster_rcnn.config.end2end())")
        if settings.IMS_PER_BATCH != 1:
            raise self.fail(f"the end-to-end mode takes one image per batch (cfg.TRAIN.IMS_PER_BATCH = 1), "
                            f"got {settings.IMS_PER_BATCH}")
        self.roidb: list[dict[str, Any]] = []
        self.perm = np.zeros(0, dtype=np.int64)
        self.cur = 0
        top[0].reshape(1, 3, max(settings.SCALES), settings.MAX_SIZE)
        top[1].reshape(1, 3)
        top[2].reshape(1, 4)

    def set_roidb(self, roidb: Sequence[dict[str, Any]]) -> None:
        """The training images (see the class); shuffles them."""
        if not roidb:
            raise self.fail("set_roidb: the roidb is empty")
        for index, entry in enumerate(roidb):
            missing = [k for k in ("image", "boxes", "gt_classes") if k not in entry]
            if missing:
                raise self.fail(f"set_roidb: entry {index} lacks {', '.join(missing)}")
        self.roidb = list(roidb)
        self._shuffle()

    def _shuffle(self) -> None:
        settings = config.current().TRAIN
        if settings.ASPECT_GROUPING:
            wide = np.array([self._size(r)[1] >= self._size(r)[0] for r in self.roidb])
            inds = np.hstack((self.random.permutation(np.where(wide)[0]),
                              self.random.permutation(np.where(~wide)[0])))
            pairs = len(inds) // 2
            rows = inds[: 2 * pairs].reshape(-1, 2)[self.random.permutation(np.arange(pairs))]
            self.perm = np.concatenate([rows.reshape(-1), inds[2 * pairs:]])
        else:
            self.perm = self.random.permutation(np.arange(len(self.roidb)))
        self.cur = 0

    @staticmethod
    def _size(entry: dict[str, Any]) -> tuple[int, int]:
        if "height" in entry and "width" in entry:
            return int(entry["height"]), int(entry["width"])
        image = entry["image"]
        if isinstance(image, np.ndarray):
            return int(image.shape[0]), int(image.shape[1])
        raise ValueError("a roidb entry with an image path needs 'height' and 'width' for ASPECT_GROUPING")

    def _image(self, entry: dict[str, Any]) -> np.ndarray:
        image = entry["image"]
        if isinstance(image, np.ndarray):
            pixels: np.ndarray = image
        else:
            import cv2  # the forks extra (opencv-python-headless)

            read = cv2.imread(str(image))
            if read is None:
                raise self.fail(f"cannot read image {image!r}")
            pixels = np.asarray(read)
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise self.fail(f"an image must be H×W×3 (BGR), got shape {pixels.shape}")
        return pixels[:, ::-1, :] if entry.get("flipped", False) else pixels

    def run(self, bottom: list[NativeBlob], top: list[NativeBlob]) -> None:
        if not self.roidb:
            raise self.fail("no images: call net.layers[0].set_roidb(roidb) first (as py-faster-rcnn's "
                            "SolverWrapper does)")
        settings = config.current()
        train = settings.TRAIN
        if self.cur + train.IMS_PER_BATCH >= len(self.roidb):
            self._shuffle()
        entry = self.roidb[int(self.perm[self.cur])]
        self.cur += train.IMS_PER_BATCH
        target = train.SCALES[int(self.random.randint(0, high=len(train.SCALES), size=1)[0])]
        image = self._image(entry).astype(np.float32) - np.asarray(settings.PIXEL_MEANS, dtype=np.float32)
        short, long = min(image.shape[:2]), max(image.shape[:2])
        scale = float(target) / float(short)
        if np.round(scale * long) > train.MAX_SIZE:
            scale = float(train.MAX_SIZE) / float(long)
        if scale != 1.0:
            import cv2

            resized = cv2.resize(image, None, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
            image = np.asarray(resized, dtype=np.float32)
        classes = np.asarray(entry["gt_classes"])
        keep = np.where(classes != 0)[0]
        gt = np.empty((len(keep), 5), dtype=np.float32)
        gt[:, :4] = np.asarray(entry["boxes"], dtype=np.float32).reshape(-1, 4)[keep] * scale
        gt[:, 4] = classes[keep]
        put(top[0], image.transpose(2, 0, 1)[None].astype(np.float32))
        put(top[1], np.array([[image.shape[0], image.shape[1], scale]], dtype=np.float32))
        put(top[2], gt)
