from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, final

from recaffe.layer import Blobs, Layer, LayerError
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS


class PythonLayerError(LayerError, RuntimeError):
    """A Python layer could not be loaded or set up (a RuntimeError, as pycaffe raises)."""


@LAYERS.register("Python")
@final
class PythonLayer(Layer):
    """A layer written in Python against pycaffe's API (``caffe.Layer``), run by recaffe.

    The class ``python_param.layer`` of module ``python_param.module`` (imported from
    ``sys.path``) is instantiated with the LayerParameter; it gets ``param_str`` and ``phase``
    (int), then its ``setup(bottom, top)``, ``reshape`` (before every forward), ``forward`` and
    ``backward(top, propagate_down, bottom)`` run on ``caffe.Blob`` views of the blobs. Blobs
    it adds with ``self.blobs.add_blob(*shape)`` are this layer's parameters (net params,
    saved in caffemodels; the user's backward decides whether their diffs accumulate).
    Params (python_param): module, layer, param_str "", share_in_parallel (deprecated, ignored).
    Bottoms / Tops: whatever the Python class accepts.
    In place: as the Python class allows.
    """

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        from caffe import _caffe  # pycaffe is the API Python layers are written against

        if self.phase == caffe_pb2.TRAIN and _caffe.solver_count() > 1 and not _caffe.multiprocess():
            raise PythonLayerError(f"{self.describe()}: Python layers do not support multi-GPU "
                                   f"training from the command line; use a multi-process launcher")
        cls = self._user_class()
        try:
            user = cls(self.param)
        except Exception as e:
            raise PythonLayerError(f"{self.describe()}: cannot create {cls.__name__}: {e!r}") from e
        if not isinstance(user, _caffe.Layer):
            raise PythonLayerError(
                f"{self.describe()}: {cls.__module__}.{cls.__name__} must subclass caffe.Layer")
        user._bind(self)
        self.user = user
        try:
            self._synced(lambda: user.setup(*self._views(bottom, top)))
        except Exception as e:
            raise PythonLayerError(f"{self.describe()}: setup raised {e!r}") from e

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        self._call("reshape", lambda: self.user.reshape(*self._views(bottom, top)))

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        self._call("forward", lambda: self.user.forward(*self._views(bottom, top)))

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        tops, bottoms = self._views(top, bottom)
        self._call("backward", lambda: self.user.backward(tops, list(propagate_down), bottoms))

    # ------------------------------------------------------------------ helpers
    def _user_class(self) -> type:
        p = self.param.python_param
        try:
            module = importlib.import_module(p.module)
        except Exception as e:
            raise PythonLayerError(f"{self.describe()}: cannot import python_param.module "
                                   f"{p.module!r}: {e!r}") from e
        if not hasattr(module, p.layer):
            raise PythonLayerError(f"{self.describe()}: module {p.module!r} has no python_param.layer "
                                   f"{p.layer!r}")
        return getattr(module, p.layer)

    @staticmethod
    def _views(first: Blobs, second: Blobs) -> tuple[list[Any], list[Any]]:
        from caffe import _blob

        return [_blob.wrap(b) for b in first], [_blob.wrap(b) for b in second]

    def _call(self, hook: str, run: Callable[[], None]) -> None:
        try:
            self._synced(run)
        except Exception as e:
            e.add_note(f"in {hook} of Python {self.describe()}")
            raise

    @staticmethod
    def _synced(run: Callable[[], None]) -> None:
        from caffe import _blob

        run()
        _blob.sync()  # values written into host mirrors of device blobs go back to the device
