"""pycaffe on recaffe: ``import caffe`` runs pycaffe scripts and notebooks unchanged.

The names of BVLC's ``caffe`` package, backed by recaffe (PyTorch tensors, Caffe's semantics):
``caffe.Net``, the solvers, ``caffe.Layer`` for Python layers, ``caffe.io``, ``caffe.NetSpec``
with ``caffe.layers``/``caffe.params``, ``caffe.Classifier``/``caffe.Detector``, and the module
functions. ``caffe.proto.caffe_pb2`` is recaffe's ``caffe_pb2``. ``NCCL`` trains with several processes
on ``torch.distributed`` (``recaffe.distributed``), as BVLC's ``python/train.py`` uses it.
"""

import recaffe as _recaffe

if getattr(_recaffe, "__file__", None) is None:  # a bare folder named recaffe, not the package
    raise ImportError(
        f"'import recaffe' found the folder {', '.join(_recaffe.__path__)} instead of the installed "
        f"package: a folder named 'recaffe' in the current directory (a checkout?) hides it. Run Python "
        f"from another folder, or install the checkout with 'make install' (pip install -e . "
        f"--config-settings editable_mode=compat), which keeps the package importable from there.")

from caffe import io  # noqa: E402
from caffe._caffe import (
    Layer,
    NonFiniteError,
    __version__,
    has_nccl,
    init_log,
    layer_type_list,
    log,
    set_device,
    set_mode_cpu,
    set_mode_gpu,
    set_multiprocess,
    set_nan_check,
    set_random_seed,
    set_solver_count,
    set_solver_rank,
    solver_count,
    solver_rank,
)
from caffe.classifier import Classifier
from caffe.detector import Detector
from caffe.net_spec import NetSpec, layers, params, to_proto
from caffe.pycaffe import (
    NCCL,
    AdaDeltaSolver,
    AdaGradSolver,
    AdamSolver,
    NesterovSolver,
    Net,
    RMSPropSolver,
    SGDSolver,
    Timer,
    get_solver,
)
from recaffe.proto import caffe_pb2 as _caffe_pb2

TRAIN = _caffe_pb2.TRAIN
TEST = _caffe_pb2.TEST

__all__ = [
    "NCCL", "TEST", "TRAIN", "AdaDeltaSolver", "AdaGradSolver", "AdamSolver", "Classifier",
    "Detector", "Layer", "Net", "NesterovSolver", "NetSpec", "NonFiniteError", "RMSPropSolver", "SGDSolver",
    "Timer",
    "__version__", "get_solver", "has_nccl", "init_log", "io", "layer_type_list", "layers", "log",
    "params", "set_device", "set_mode_cpu", "set_mode_gpu", "set_multiprocess", "set_nan_check",
    "set_random_seed",
    "set_solver_count", "set_solver_rank", "solver_count", "solver_rank", "to_proto",
]
