"""Caffe's float arithmetic on Python scalars."""

from __future__ import annotations

import ctypes


def f32(x: float) -> float:
    """``x`` rounded to the nearest C ``float`` (overflow gives ±inf), as a Python float."""
    return ctypes.c_float(x).value
