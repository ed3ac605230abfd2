"""Caffe's float arithmetic on Python scalars."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


def f32(x: float) -> float:
    """``x`` rounded to the nearest C ``float`` (overflow gives ±inf), as a Python float."""
    return ctypes.c_float(x).value


@functools.cache
def libm_float_function(name: str, arity: int) -> Callable[..., float] | None:
    """C's libm function ``name`` on ``arity`` floats returning a float (``expf``, ``powf``), or None
    where no libm is found or it lacks the function."""
    path = ctypes.util.find_library("m")
    try:
        fn = getattr(ctypes.CDLL(path), name) if path else None
    except (OSError, AttributeError):
        fn = None
    if fn is not None:
        fn.argtypes, fn.restype = [ctypes.c_float] * arity, ctypes.c_float
    return fn
