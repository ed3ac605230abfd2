"""pycaffe's ``caffe.Layer`` (re-exported by ``caffe``): the base class of Python layers, and the
view of built-in layers."""

from __future__ import annotations

from collections.abc import Sequence

from recaffe import blob as recaffe_blob
from recaffe import layer as recaffe_layer
from recaffe.io import blobproto
from recaffe.proto import caffe_pb2
from recaffe.pylayer.blobs import Blob, BlobVec


class Layer:
    """pycaffe's Layer: the base class of Python layers, and the view of built-in layers.

    A Python layer subclasses it and defines ``setup(bottom, top)``, ``reshape(bottom, top)``,
    ``forward(bottom, top)`` and ``backward(top, propagate_down, bottom)``; ``bottom`` and
    ``top`` are lists of ``caffe.Blob``. Before ``setup`` the layer gets ``param_str`` (from
    ``python_param``) and ``phase`` (0 TRAIN, 1 TEST). ``self.blobs.add_blob(*shape)`` adds a
    learnable parameter. ``net.layers`` hands out the user's object for Python layers, and a
    ``Layer`` wrapping the recaffe layer (``type``, ``blobs``, ``setup``, ``reshape``) otherwise.
    """

    def __init__(self, param: caffe_pb2.LayerParameter | None = None) -> None:
        self._layer_param = caffe_pb2.LayerParameter()
        if param is not None:
            self._layer_param.CopyFrom(param)
        self._native: recaffe_layer.Layer | None = None
        self.param_str = self._layer_param.python_param.param_str
        self.phase = int(self._layer_param.phase)
        loaded = [blobproto.blob_from_proto(b) for b in self._layer_param.blobs]
        self._blobs = BlobVec(loaded)

    @classmethod
    def _of(cls, native: recaffe_layer.Layer) -> Layer:
        """The view of a built-in recaffe layer."""
        layer = cls.__new__(cls)
        layer._layer_param = native.param
        layer._native = native
        layer.phase = int(native.phase)
        layer._blobs = BlobVec(native.blobs, native.new_blob)
        return layer

    @property
    def blobs(self) -> BlobVec:
        return self._blobs

    @property
    def type(self) -> str:
        return self._native.type if self._native is not None else "Python"

    def setup(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        if self._native is not None:
            self._native.layer_setup(_unwrap(bottom), _unwrap(top))

    def reshape(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        if self._native is not None:
            self._native.reshape(_unwrap(bottom), _unwrap(top))

    def forward(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        if self._native is None:
            raise NotImplementedError(f"{type(self).__name__} does not define forward(bottom, top)")
        self._native.run_forward(_unwrap(bottom), _unwrap(top))

    def backward(self, top: Sequence[Blob], propagate_down: Sequence[bool], bottom: Sequence[Blob]) -> None:
        if self._native is not None:
            self._native.run_backward(_unwrap(top), list(propagate_down), _unwrap(bottom))
        elif any(propagate_down):
            raise NotImplementedError(
                f"{type(self).__name__} does not define backward(top, propagate_down, bottom)")

    def __repr__(self) -> str:
        return f"<caffe.Layer {self._layer_param.name!r} ({self.type})>"


def _unwrap(blobs: Sequence[Blob]) -> list[recaffe_blob.Blob]:
    return [b._blob for b in blobs]


def attach(user: Layer, host: recaffe_layer.Layer) -> None:
    """Make ``host``, the recaffe layer running the Python layer ``user``, own its blobs (they
    become net params). Sets every attribute ``Layer.__init__`` would, so subclasses need not
    call it."""
    user._native = None
    user._layer_param = host.param
    user._blobs = BlobVec(host.blobs, host.new_blob)
    user.param_str = host.param.python_param.param_str
    user.phase = int(host.phase)


def layer_view(native: recaffe_layer.Layer) -> Layer:
    """What ``net.layers`` shows for a recaffe layer: a Python layer's own object, else a view."""
    user = getattr(native, "user", None)
    return user if isinstance(user, Layer) else Layer._of(native)
