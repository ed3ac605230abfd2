from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Sequence
from typing import final

from recaffe import distributed, net_builder
from recaffe.forks import python_layers
from recaffe.layer import Blobs, Layer, LayerError
from recaffe.proto import caffe_pb2
from recaffe.pylayer import base, blobs
from recaffe.registry import LAYERS

log = logging.getLogger(__name__)


class PythonLayerError(LayerError, RuntimeError):
    """A Python layer could not be loaded or set up (a RuntimeError, as pycaffe raises)."""


@LAYERS.register("Python")
@final
class PythonLayer(Layer):
    """A layer written in Python against pycaffe's API (``caffe.Layer``), run by recaffe.

    The class ``python_param.layer`` of module ``python_param.module`` (imported from
    ``sys.path``: PYTHONPATH and the current folder, not the prototxt's folder, as in Caffe) is
    instantiated with the LayerParameter; it gets ``param_str`` and ``phase`` (int), then its
    ``setup(bottom, top)``, ``reshape`` (before every forward), ``forward`` and
    ``backward(top, propagate_down, bottom)`` run on ``caffe.Blob`` views of the blobs
    (``recaffe.pylayer``). Blobs it adds with ``self.blobs.add_blob(*shape)`` are this layer's
    parameters (net params, saved in caffemodels; the user's backward decides whether their diffs
    accumulate). py-faster-rcnn's layers (``rpn.proposal_layer`` and the others) resolve to
    recaffe's built-in stand-ins when their module cannot be imported (``RECAFFE_PYTHON_LAYERS``:
    ``recaffe.forks.python_layers``).
    Params (python_param): module, layer, param_str "", share_in_parallel (deprecated, ignored).
    Bottoms / Tops: whatever the Python class accepts.
    In place: as the Python class allows (the net does not refuse it).
    """

    supports_in_place = True

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        if self.phase == caffe_pb2.TRAIN and _several_solvers_in_one_process():
            raise PythonLayerError(f"{self.describe()}: Python layers do not support multi-GPU "
                                   f"training from the command line; use a multi-process launcher")
        cls = self._user_class()
        try:
            user = cls(self.param)
        except Exception as e:
            raise PythonLayerError(f"{self.describe()}: cannot create {cls.__name__}: {_message(e)}") from e
        if not isinstance(user, base.Layer):
            raise PythonLayerError(
                f"{self.describe()}: {cls.__module__}.{cls.__name__} must subclass caffe.Layer")
        base.attach(user, self)
        self.user = user
        try:
            blobs.synced(user.setup)(*self._views(bottom, top))
        except Exception as e:
            raise PythonLayerError(f"{self.describe()}: setup raised {_message(e)}") from e

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
        builtin = python_layers.built_in(p.module, p.layer)
        if builtin is None:
            return self._import_user_class()
        setting = python_layers.choice()
        if setting == "builtin":
            return builtin
        try:
            return self._import_user_class()
        except PythonLayerError as e:
            cause = e.__cause__
            if setting == "user" or not isinstance(cause, (ImportError, SyntaxError)):
                raise
            absent = isinstance(cause, ModuleNotFoundError) and cause.name is not None and (
                p.module == cause.name or p.module.startswith(f"{cause.name}."))
            # the module is not there: expected; it is there but fails: say so louder
            log.log(logging.INFO if absent else logging.WARNING,
                    "%s: %s; using recaffe's built-in %s (%s=user to require the module)",
                    self.describe(), _message(cause), p.layer, python_layers.ENV)
            return builtin

    def _import_user_class(self) -> type:
        p = self.param.python_param
        try:
            module = importlib.import_module(p.module)
        except ModuleNotFoundError as e:
            if e.name is None or not (p.module == e.name or p.module.startswith(f"{e.name}.")):
                raise PythonLayerError(f"{self.describe()}: importing python_param.module {p.module!r} "
                                       f"failed: {_message(e)}") from e
            raise PythonLayerError(f"{self.describe()}: cannot import python_param.module {p.module!r} "
                                   f"({e}). {_search_hint(p.module)}") from e
        except Exception as e:
            raise PythonLayerError(f"{self.describe()}: importing python_param.module {p.module!r} "
                                   f"failed: {_message(e)}") from e
        if not hasattr(module, p.layer):
            raise PythonLayerError(f"{self.describe()}: module {p.module!r} has no python_param.layer "
                                   f"{p.layer!r}")
        return getattr(module, p.layer)

    @staticmethod
    def _views(first: Blobs, second: Blobs) -> tuple[list[blobs.Blob], list[blobs.Blob]]:
        return [blobs.wrap(b) for b in first], [blobs.wrap(b) for b in second]

    def _call(self, hook: str, run: Callable[[], None]) -> None:
        try:
            blobs.synced(run)()
        except Exception as e:
            e.add_note(f"in {hook} of Python {self.describe()}")
            raise


def _message(e: BaseException) -> str:
    """``Type: message`` with the exception's own text (an OSError keeps its file name)."""
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _search_hint(module: str) -> str:
    """Where Python looked for ``module`` and how to make it look where the module is."""
    file = module.replace(".", os.sep) + ".py"
    hint = (f"Python layers are imported from sys.path (PYTHONPATH and the current folder "
            f"{os.getcwd()}); add the folder that holds {file} to PYTHONPATH")
    source = net_builder.building_from.get()
    if source is not None:
        folder = os.path.dirname(os.path.abspath(source))
        there = " (it is there)" if os.path.exists(os.path.join(folder, file)) else ""
        hint += (f", e.g. the prototxt's folder{there}: PYTHONPATH={folder}"
                 f"{os.pathsep}$PYTHONPATH (Caffe does not search the prototxt's folder)")
    return hint + "."


def _several_solvers_in_one_process() -> bool:
    """Whether several solvers were asked for without a multi-process launcher (Caffe refuses
    Python layers then): ``recaffe.distributed``'s settings (pycaffe's ``caffe.set_solver_count``
    and ``set_multiprocess`` write them)."""
    return distributed.solver_count() > 1 and not distributed.multiprocess()
