"""Where new nets put their tensors: Caffe's CPU/GPU mode and device id (``set_mode_gpu``...).

The mode is a process-wide default, as in pycaffe; a Net can always be given its own ``device``.
``RECAFFE_CPU_FALLBACK=1`` turns asking for a GPU on a machine without CUDA (``set_mode_gpu``,
``caffe.set_mode_gpu()``, ``-gpu N``) from an error into a warning, and the CPU is used.
"""

from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger(__name__)

CPU_FALLBACK_ENV = "RECAFFE_CPU_FALLBACK"

_state: dict[str, str | int] = {"mode": "cpu", "device_id": 0}
_fallback_warned: list[bool] = [False]


def cpu_fallback() -> bool:
    """Whether ``RECAFFE_CPU_FALLBACK`` asks for the CPU where a GPU is asked for but none is seen."""
    return os.environ.get(CPU_FALLBACK_ENV, "").strip() not in ("", "0")


def set_mode_cpu() -> None:
    _state["mode"] = "cpu"


def set_mode_gpu() -> None:
    """Put new nets on CUDA device ``device_id``; raises if PyTorch sees no CUDA device, unless
    ``RECAFFE_CPU_FALLBACK=1``: then the mode stays CPU, with one warning per process.

    cuDNN is switched to deterministic algorithms, so repeated runs give the same numbers.
    """
    if not torch.cuda.is_available():
        if not cpu_fallback():
            raise RuntimeError(f"set_mode_gpu: no CUDA device is available to PyTorch on this machine "
                               f"(set {CPU_FALLBACK_ENV}=1 to run on the CPU instead)")
        if not _fallback_warned[0]:
            log.warning("set_mode_gpu: no CUDA device is available to PyTorch; %s is set, using the CPU",
                        CPU_FALLBACK_ENV)
            _fallback_warned[0] = True
        set_mode_cpu()
        return
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    _state["mode"] = "gpu"


def set_device(device_id: int) -> None:
    if device_id < 0:
        raise ValueError(f"device id must be >= 0, got {device_id}")
    _state["device_id"] = int(device_id)


def mode() -> str:
    return str(_state["mode"])


def default_device() -> torch.device:
    if _state["mode"] == "gpu":
        return torch.device("cuda", int(_state["device_id"]))
    return torch.device("cpu")


def use_device(ids: list[int]) -> torch.device:
    """Make the first id (or the CPU) the default device of new nets; returns it."""
    if not ids:
        set_mode_cpu()
        return torch.device("cpu")
    set_device(ids[0])
    set_mode_gpu()
    return torch.device("cuda", ids[0])
