"""Axis bookkeeping shared by Scale and Bias: a small operand broadcast into a bigger bottom.

The operand covers ``k`` consecutive axes of the bottom starting at ``axis``; the bottom is then
viewed as ``(outer, dim, inner)`` with ``dim`` the operand's element count.
"""

from __future__ import annotations

from recaffe.blob import Blob
from recaffe.layer import Layer


def operand_shape(layer: Layer, bottom: Blob, axis: int, num_axes: int) -> tuple[int, ...]:
    """Shape of a learned operand applied from ``axis`` over ``num_axes`` axes (−1: to the end)."""
    start = bottom.canonical_axis(axis)
    if num_axes < -1:
        raise layer.error(f"num_axes must be >= 0, or -1 to extend to the end of bottom[0]; "
                          f"got {num_axes}")
    if num_axes >= 0 and bottom.num_axes < start + num_axes:
        raise layer.error(f"num_axes {num_axes} from axis {start} extends past bottom[0]'s "
                          f"shape {bottom.shape}")
    end = bottom.num_axes if num_axes == -1 else start + num_axes
    return bottom.shape[start:end]


def broadcast_dims(layer: Layer, bottom: Blob, operand: Blob, axis: int) -> tuple[int, int, int]:
    """``(outer, dim, inner)`` for ``operand`` applied to ``bottom`` from ``axis``.

    A scalar operand (no axes) always applies from axis 0, whatever ``axis`` says.
    """
    start = 0 if operand.num_axes == 0 else bottom.canonical_axis(axis)
    if bottom.num_axes < start + operand.num_axes:
        raise layer.error(f"operand of shape {operand.shape} extends past bottom[0]'s shape "
                          f"{bottom.shape} when applied from axis {start}")
    if bottom.shape[start:start + operand.num_axes] != operand.shape:
        raise layer.error(f"dimension mismatch: bottom[0] has shape {bottom.shape}, the operand "
                          f"{operand.shape} does not match it from axis {start}")
    return bottom.count(0, start), operand.count(), bottom.count(start + operand.num_axes)
