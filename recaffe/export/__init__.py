"""Leaving Caffe with its numbers: export to PyTorch and ONNX, Caffe's solver as a torch
optimizer, and ``explain`` (where a reimplementation would silently differ). See docs/export.md."""

from recaffe.export.graph import ExportError
from recaffe.export.onnx import to_onnx
from recaffe.export.optimizer import CaffeLR, CaffeOptimizer, caffe_optimizer
from recaffe.export.torch_module import source, to_torch, write_torch

__all__ = ["CaffeLR", "CaffeOptimizer", "ExportError", "caffe_optimizer", "source", "to_onnx", "to_torch",
           "write_torch"]
