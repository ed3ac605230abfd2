"""SSD dialect: Wei Liu's fork (github.com/weiliu89/caffe, branch ssd): its deploy layers
Permute, PriorBox, Normalize and DetectionOutput (Flatten, Concat and Reshape are BVLC's), and its
training layers AnnotatedData, MultiBoxLoss and DetectionEvaluate."""

from __future__ import annotations

from recaffe.forks.dialect import Dialect
from recaffe.forks.ssd import caffe_ssd_pb2

DIALECT = Dialect(
    name="ssd",
    fork="the SSD fork (weiliu89/caffe, branch ssd)",
    pb2=caffe_ssd_pb2,
    layer_types=("Permute", "PriorBox", "Normalize", "DetectionOutput", "MultiBoxLoss", "DetectionEvaluate",
                 "AnnotatedData"),
)

# the layers register themselves for this dialect (after DIALECT exists: they look it up at setup)
from recaffe.forks.ssd import (  # noqa: E402,F401
    annotated_data,
    detection_evaluate,
    detection_output,
    evaluation,
    multibox_loss,
    normalize,
    permute,
    prior_box,
)
