"""Fast/Faster R-CNN dialect: Ross Girshick's fork (rbgirshick/caffe-fast-rcnn, the Caffe of
py-faster-rcnn): ROIPooling, SmoothL1Loss and Dropout's ``scale_train``; OpenCV dnn's
``Proposal`` layer; and built-in stand-ins for py-faster-rcnn's Python layers
(``recaffe.forks.python_layers``)."""

from __future__ import annotations

from recaffe.forks.dialect import Dialect
from recaffe.forks.faster_rcnn import caffe_faster_rcnn_pb2

DIALECT = Dialect(
    name="faster_rcnn",
    fork="the Fast/Faster R-CNN fork (rbgirshick/caffe-fast-rcnn)",
    pb2=caffe_faster_rcnn_pb2,
    layer_types=("ROIPooling", "SmoothL1Loss", "Dropout", "Proposal"),
)

# the layers register themselves for this dialect (after DIALECT exists: they look it up at setup)
from recaffe.forks.faster_rcnn import dropout, proposal, roi_pooling, smooth_l1_loss  # noqa: E402,F401
