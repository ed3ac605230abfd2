"""recaffe: Caffe, rebuilt in Python on PyTorch tensors, with Caffe's exact semantics.

The four nouns: ``Blob`` (data + diff), ``Layer`` (one registered type each), ``Net`` (a DAG
of layers from a prototxt) and ``Solver`` (Caffe's update rules). Units plug in through the
registries ``LAYERS``, ``SOLVERS``, ``FILLERS`` and ``LR_POLICIES``.
"""

from recaffe import _wait_policy  # noqa: F401, I001  (first: before torch is imported)
from recaffe import layers as _layers  # noqa: F401  (registers every layer type)
from recaffe import solvers as _solvers  # noqa: F401  (registers every solver and lr policy)
from recaffe import threads as _threads
from recaffe.blob import Blob
from recaffe.device import set_device, set_mode_cpu, set_mode_gpu
from recaffe.layer import Layer, LayerError
from recaffe.net import TEST, TRAIN, Net
from recaffe.proto import caffe_pb2
from recaffe.registry import FILLERS, LAYERS, LR_POLICIES, SOLVERS, UnknownTypeError
from recaffe.rng import set_random_seed
from recaffe.solver import Solver, SolverError, load_solver

__version__ = "0.1.0"
_threads.configure()

__all__ = [
    "FILLERS",
    "LAYERS",
    "LR_POLICIES",
    "SOLVERS",
    "TEST",
    "TRAIN",
    "Blob",
    "Layer",
    "LayerError",
    "Net",
    "Solver",
    "SolverError",
    "UnknownTypeError",
    "caffe_pb2",
    "load_solver",
    "set_device",
    "set_mode_cpu",
    "set_mode_gpu",
    "set_random_seed",
]
