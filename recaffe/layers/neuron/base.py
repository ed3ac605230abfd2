"""NeuronLayer: the base of element-wise layers (one bottom, one top of the same shape)."""

from __future__ import annotations

import math

from recaffe.layer import Blobs, Layer
from recaffe.math.floats import f32


class NeuronLayer(Layer):
    """One bottom, one top shaped like it; in-place use allowed unless a subclass says otherwise."""

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1
    supports_in_place = True  # Caffe runs neuron layers in place (AbsVal refuses)

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        top[0].reshape_like(bottom[0])


def log_of_base(layer: Layer, field: str, base: float) -> float:
    """ln(base) rounded to float32 (1 for the natural base -1), as Exp and Log keep it.

    ``field`` names the parameter message in errors (``exp_param``, ``log_param``). The base must
    be -1 or > 0, and its logarithm finite.
    """
    value = f32(base)
    natural = value == -1
    if not natural and not value > 0:
        raise layer.error(f"{field}.base must be > 0 (or -1 for e), got {base}")
    log_base = 1.0 if natural else f32(math.log(value))
    if not math.isfinite(log_base):
        raise layer.error(f"{field}.base {base} gives log(base) = {log_base}")
    return log_base
