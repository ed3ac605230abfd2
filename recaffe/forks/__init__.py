"""Caffe fork dialects: the schemas and layers of popular Caffe forks, as plug-ins to the BVLC core.

Each fork lives in ``recaffe/forks/<dialect>/``: ``<dialect>.proto`` (the fork's messages and
fields with the fork's own field numbers), the generated ``caffe_<dialect>_pb2`` (BVLC's schema
plus those fields, in the proto package ``recaffe.forks.<dialect>``), its layers (registered in
``recaffe.registry.LAYERS`` for that dialect only) and its ``DIALECT``. See docs/forks.md.

Importing this package installs ``reading`` as ``io.prototxt.dialect_reader``: reading a prototxt
(``prototxt.read_net_param``) then detects the dialect from the fields and layer types it uses,
or takes the one named (``--dialect NAME``, ``Net(..., dialect=NAME)``); a BVLC prototxt reads
exactly as before and never meets a fork field.
"""

from __future__ import annotations

from recaffe.forks import reading
from recaffe.forks.catalog import (
    BVLC,
    DIALECT_PACKAGES,
    NOT_YET,
    default_dialect,
    dialects,
    get_dialect,
    layer_dialect,
    set_default_dialect,
)
from recaffe.forks.dialect import Dialect, carried_fields
from recaffe.io import prototxt

__all__ = ["BVLC", "DIALECT_PACKAGES", "NOT_YET", "Dialect", "carried_fields", "default_dialect", "dialects",
           "get_dialect", "layer_dialect", "set_default_dialect"]

prototxt.dialect_reader = reading  # nets are read in their dialect from now on (see io.prototxt)
