"""Tools that find where the numbers go wrong: the NaN/Inf guard (``nan_guard``), the comparison of
weights and solver states (``compare``) and the reproducibility check (``repro``)."""

from recaffe.debug.nan_guard import NonFiniteError, is_enabled, set_enabled

__all__ = ["NonFiniteError", "is_enabled", "set_enabled"]
