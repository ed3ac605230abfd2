"""Caffe's protobuf messages: ``caffe.proto.caffe_pb2`` is recaffe's ``caffe_pb2`` module itself."""

from caffe.proto import caffe_pb2  # noqa: F401
