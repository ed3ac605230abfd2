"""The settings py-faster-rcnn's Python layers read from ``fast_rcnn.config.cfg``.

The built-in stand-ins read them from ``current()``: py-faster-rcnn's own ``cfg`` object when
``fast_rcnn.config`` has been imported (py-faster-rcnn's tools import it and load their
``--cfg`` YAML into it before building the net), otherwise recaffe's copy ``cfg`` below, which
holds py-faster-rcnn's defaults (lib/fast_rcnn/config.py) and may be changed in place, e.g.
``config.cfg.TRAIN.RPN_BATCHSIZE = 64``.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import numpy as np


def defaults() -> SimpleNamespace:
    """A fresh copy of py-faster-rcnn's defaults (the keys the stand-ins read)."""
    train = SimpleNamespace(
        SCALES=(600,), MAX_SIZE=1000, IMS_PER_BATCH=2, BATCH_SIZE=128, FG_FRACTION=0.25,
        FG_THRESH=0.5, BG_THRESH_HI=0.5, BG_THRESH_LO=0.1, BBOX_INSIDE_WEIGHTS=(1.0, 1.0, 1.0, 1.0),
        BBOX_NORMALIZE_TARGETS_PRECOMPUTED=False, BBOX_NORMALIZE_MEANS=(0.0, 0.0, 0.0, 0.0),
        BBOX_NORMALIZE_STDS=(0.1, 0.1, 0.2, 0.2), ASPECT_GROUPING=True, HAS_RPN=False,
        RPN_POSITIVE_OVERLAP=0.7, RPN_NEGATIVE_OVERLAP=0.3, RPN_CLOBBER_POSITIVES=False,
        RPN_FG_FRACTION=0.5, RPN_BATCHSIZE=256, RPN_NMS_THRESH=0.7, RPN_PRE_NMS_TOP_N=12000,
        RPN_POST_NMS_TOP_N=2000, RPN_MIN_SIZE=16, RPN_BBOX_INSIDE_WEIGHTS=(1.0, 1.0, 1.0, 1.0),
        RPN_POSITIVE_WEIGHT=-1.0, BBOX_REG=True, USE_FLIPPED=True, BBOX_THRESH=0.5,
        BBOX_NORMALIZE_TARGETS=True)
    test = SimpleNamespace(RPN_NMS_THRESH=0.7, RPN_PRE_NMS_TOP_N=6000, RPN_POST_NMS_TOP_N=300,
                           RPN_MIN_SIZE=16)
    return SimpleNamespace(TRAIN=train, TEST=test,
                           PIXEL_MEANS=np.array([[[102.9801, 115.9465, 122.7717]]]), RNG_SEED=3)


cfg = defaults()


def current() -> Any:
    """py-faster-rcnn's ``cfg`` when its ``fast_rcnn.config`` is imported, else recaffe's ``cfg``."""
    theirs = sys.modules.get("fast_rcnn.config")
    found = getattr(theirs, "cfg", None)
    return found if found is not None else cfg


def phase_section(phase: int) -> Any:
    """``cfg.TRAIN`` or ``cfg.TEST`` for a layer's phase (0 TRAIN, 1 TEST)."""
    settings = current()
    return settings.TRAIN if phase == 0 else settings.TEST


def end2end(settings: Any = None) -> Any:
    """Apply py-faster-rcnn's experiments/cfgs/faster_rcnn_end2end.yml to ``settings`` (recaffe's
    ``cfg`` by default): HAS_RPN, one image per batch, normalized box targets, BG_THRESH_LO 0,
    RPN_POSITIVE_OVERLAP 0.7, RPN_BATCHSIZE 256."""
    target = cfg if settings is None else settings
    target.TRAIN.HAS_RPN = True
    target.TRAIN.IMS_PER_BATCH = 1
    target.TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED = True
    target.TRAIN.RPN_POSITIVE_OVERLAP = 0.7
    target.TRAIN.RPN_BATCHSIZE = 256
    target.TRAIN.BG_THRESH_LO = 0.0
    return target
