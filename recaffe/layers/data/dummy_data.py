from __future__ import annotations

from typing import final

from recaffe import fillers, rng
from recaffe.blob import Blob
from recaffe.layer import Blobs
from recaffe.layers.data.base import DataSourceLayer
from recaffe.proto import caffe_pb2
from recaffe.registry import FILLERS, LAYERS

LEGACY_DIMS = ("num", "channels", "height", "width")


@LAYERS.register("DummyData")
@final
class DummyDataLayer(DataSourceLayer):
    """Tops of fixed shapes filled by fillers: constant ones once at setup, others every forward.

    Forward: each top whose filler is not "constant" is refilled, in top order, drawing from
        Caffe's random stream exactly as Caffe's fillers do; constant tops never change.
    Backward: nothing (no bottoms).
    Params (dummy_data_param): data_filler (0, 1 or one per top; default constant 0);
        shape (1, or one per top), or the legacy num/channels/height/width (each given 1 or
        one-per-top times; 4-D tops).
    Bottoms: none. Tops: >= 1, shaped by ``shape`` or the legacy dims.
    """

    min_top_blobs = 1

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.dummy_data_param
        n = len(top)
        if len(p.data_filler) not in (0, 1, n):
            raise self.error(f"dummy_data_param.data_filler must be given 0, 1 or {n} (one per top) "
                             f"times, got {len(p.data_filler)}")
        self.fillers = list(p.data_filler) or [caffe_pb2.FillerParameter(type="constant", value=0)]
        for filler in self.fillers:  # an unknown type fails at setup, as in Caffe
            if filler.type not in FILLERS:
                raise self.error(f"unknown data_filler type {filler.type!r} "
                                 f"(known types: {', '.join(FILLERS.names())})")
        for i, blob in enumerate(top):
            blob.reshape(self._shape(i, n))
        for i, blob in enumerate(top):
            if self._filler(i).type == "constant":
                self._fill(blob, self._filler(i))

    def _shape(self, i: int, n: int) -> list[int]:
        p = self.param.dummy_data_param
        legacy = any(len(getattr(p, name)) for name in LEGACY_DIMS)
        if not legacy:
            if len(p.shape) not in (1, n):
                raise self.error(f"dummy_data_param.shape must be given once or once per top ({n}), "
                                 f"got {len(p.shape)}")
            return list(p.shape[0 if len(p.shape) == 1 else i].dim)
        if p.shape:
            raise self.error("dummy_data_param gives both shape and the legacy num/channels/height/width")
        dims = []
        for name in LEGACY_DIMS:
            values = getattr(p, name)
            if len(values) not in (1, n):
                raise self.error(f"dummy_data_param.{name} must be given once or once per top ({n}), "
                                 f"got {len(values)}")
            dims.append(values[0 if len(values) == 1 else i])
        return dims

    def _filler(self, i: int) -> caffe_pb2.FillerParameter:
        return self.fillers[i if len(self.fillers) > 1 else 0]

    def _fill(self, blob: Blob, filler: caffe_pb2.FillerParameter) -> None:
        try:
            fillers.fill(blob, filler, rng.get_rng())
        except ValueError as e:
            raise self.error(str(e)) from None

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        for i, blob in enumerate(top):
            if self._filler(i).type != "constant":
                self._fill(blob, self._filler(i))
