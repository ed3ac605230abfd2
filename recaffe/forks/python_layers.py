"""Built-in stand-ins for the Python layers of published fork nets (py-faster-rcnn's).

py-faster-rcnn's prototxts name Python layers (``python_param { module: 'rpn.proposal_layer'
layer: 'ProposalLayer' }``) whose modules need py-faster-rcnn's ``lib`` on PYTHONPATH, its
compiled Cython NMS and box-overlap extensions, and Python 2. recaffe ships torch/numpy
equivalents and resolves those names to them, as set by ``RECAFFE_PYTHON_LAYERS``:

* ``auto`` (the default): the user's module when it imports; the built-in one when it cannot be
  imported (not on ``sys.path``, a missing compiled extension, Python 2 syntax), with a log line.
* ``builtin``: always the built-in one (the user's module is not imported).
* ``user``: always the user's module, as Caffe does (an import failure is an error).
"""

from __future__ import annotations

import importlib
import os

ENV = "RECAFFE_PYTHON_LAYERS"
CHOICES = ("auto", "builtin", "user")

# (python_param.module, python_param.layer) -> (recaffe module, class)
STAND_INS: dict[tuple[str, str], tuple[str, str]] = {
    ("rpn.proposal_layer", "ProposalLayer"): ("recaffe.forks.faster_rcnn.rpn", "ProposalLayer"),
    ("rpn.anchor_target_layer", "AnchorTargetLayer"):
        ("recaffe.forks.faster_rcnn.anchor_target", "AnchorTargetLayer"),
    ("rpn.proposal_target_layer", "ProposalTargetLayer"):
        ("recaffe.forks.faster_rcnn.proposal_target", "ProposalTargetLayer"),
    ("roi_data_layer.layer", "RoIDataLayer"): ("recaffe.forks.faster_rcnn.roi_data", "RoIDataLayer"),
}


def choice() -> str:
    """The setting of ``RECAFFE_PYTHON_LAYERS`` (``auto`` when unset)."""
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in CHOICES:
        raise ValueError(f"{ENV}={value!r}: expected one of {', '.join(CHOICES)}")
    return value


def built_in(module: str, layer: str) -> type | None:
    """recaffe's class standing in for Python layer ``module.layer``, or None if there is none."""
    where = STAND_INS.get((module, layer))
    if where is None:
        return None
    cls: type = getattr(importlib.import_module(where[0]), where[1])
    return cls
