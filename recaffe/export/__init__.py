"""Leaving Caffe with its numbers: export to PyTorch and ONNX, Caffe's solver as a torch
optimizer, and ``explain`` (where a reimplementation would silently differ)."""

from recaffe.export.graph import ExportError
from recaffe.export.torch_module import source, to_torch, write_torch

__all__ = ["ExportError", "source", "to_torch", "write_torch"]
