"""``caffe.proto.caffe_pb2``: an alias of ``recaffe.proto.caffe_pb2`` (the same module object).

Messages built through either name are the same classes, so pycaffe scripts and recaffe
exchange NetParameters, BlobProtos and Datums freely.
"""

import sys

from recaffe.proto import caffe_pb2 as _caffe_pb2

sys.modules[__name__] = _caffe_pb2
