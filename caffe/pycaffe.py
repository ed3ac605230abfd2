"""pycaffe's Pythonic interface: ``caffe.Net`` with blobs/params dicts and keyword forward and
backward, and the solver classes.

Arrays handed out are live views of the blobs (see ``recaffe.pylayer.blobs``), as in pycaffe.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any

import numpy as np

from caffe import _caffe
from caffe._caffe import NCCL, Layer, Timer
from recaffe.io import prototxt
from recaffe.pylayer.blobs import Blob, BlobVec, sync, synced
from recaffe.registry import SOLVERS

__all__ = [
    "NCCL", "AdaDeltaSolver", "AdaGradSolver", "AdamSolver", "Blob", "BlobVec", "Layer", "Net",
    "NesterovSolver", "RMSPropSolver", "SGDSolver", "Solver", "Timer", "get_solver",
]

Arrays = Mapping[str, np.ndarray]


class Net(_caffe.Net):
    """A Caffe net with pycaffe's interface (``caffe.Net``).

    ``Net(network_file, phase, level=0, stages=None, weights=None)`` (or the deprecated
    ``Net(network_file, weights_file, phase)``). ``blobs``, ``params``, ``layer_dict``,
    ``top_names`` and ``bottom_names`` are ordered dicts from input to output; blob arrays are
    live views, so ``net.blobs['data'].data[...] = x`` feeds the net.
    """

    # ------------------------------------------------------------ dicts
    @cached_property
    def blobs(self) -> OrderedDict[str, Blob]:
        """Blob name -> Blob, input to output (Split blobs included)."""
        return OrderedDict(zip(self._blob_names, self._blobs))

    @cached_property
    def blob_loss_weights(self) -> OrderedDict[str, float]:
        return OrderedDict(zip(self._blob_names, self._blob_loss_weights))

    @cached_property
    def layer_dict(self) -> OrderedDict[str, Layer]:
        return OrderedDict(zip(self._layer_names, self.layers))

    @cached_property
    def params(self) -> OrderedDict[str, BlobVec]:
        """Layer name -> its parameter blobs, for layers that have any (shared ones under each user)."""
        return OrderedDict((name, layer.blobs) for name, layer in zip(self._layer_names, self.layers)
                           if len(layer.blobs) > 0)

    @cached_property
    def inputs(self) -> list[str]:
        names = self._blob_names
        return [names[i] for i in self._inputs]

    @cached_property
    def outputs(self) -> list[str]:
        names = self._blob_names
        return [names[i] for i in self._outputs]

    @cached_property
    def top_names(self) -> OrderedDict[str, list[str]]:
        return self._names_by_layer(self._top_ids)

    @cached_property
    def bottom_names(self) -> OrderedDict[str, list[str]]:
        return self._names_by_layer(self._bottom_ids)

    def _names_by_layer(self, ids: Callable[[int], list[int]]) -> OrderedDict[str, list[str]]:
        names = self._blob_names
        return OrderedDict((layer, [names[j] for j in ids(i)]) for i, layer in enumerate(self._layer_names))

    # ------------------------------------------------------------ running
    def forward(self, blobs: Sequence[str] | None = None, start: str | None = None,
                end: str | None = None, **kwargs: np.ndarray) -> dict[str, np.ndarray]:
        """Run layers ``start..end`` (names; default all) after copying ``kwargs`` into the inputs.

        ``kwargs`` must name exactly the net's inputs, each with the blob's batch size. Returns
        live views of the outputs (or of ``end``'s tops) plus the blobs named in ``blobs``.
        """
        blobs = list(blobs or [])
        start_index = self._layer_names.index(start) if start is not None else 0
        if end is not None:
            end_index = self._layer_names.index(end)
            wanted = set(self.top_names[end] + blobs)
        else:
            end_index = len(self.layers) - 1
            wanted = set(self.outputs + blobs)
        if kwargs:
            if set(kwargs) != set(self.inputs):
                raise Exception("Input blob arguments do not match net inputs.")
            for name, array in kwargs.items():
                if array.shape[0] != self.blobs[name].shape[0]:
                    raise Exception("Input is not batch sized")
                self.blobs[name].data[...] = array
        self._forward(start_index, end_index)
        return {name: self.blobs[name].data for name in wanted}

    def backward(self, diffs: Sequence[str] | None = None, start: str | None = None,
                 end: str | None = None, **kwargs: np.ndarray) -> dict[str, np.ndarray]:
        """Run layers ``start`` down to ``end`` (names; default all) after copying ``kwargs`` into
        the output diffs. Param diffs accumulate (``clear_param_diffs()`` zeroes them).

        ``kwargs`` must name exactly the net's outputs. Returns live views of the input diffs
        (or of ``end``'s bottoms) plus the diffs named in ``diffs``.
        """
        diffs = list(diffs or [])
        start_index = self._layer_names.index(start) if start is not None else len(self.layers) - 1
        if end is not None:
            end_index = self._layer_names.index(end)
            wanted = set(self.bottom_names[end] + diffs)
        else:
            end_index = 0
            wanted = set(self.inputs + diffs)
        if kwargs:
            if set(kwargs) != set(self.outputs):
                raise Exception("Top diff arguments do not match net outputs.")
            for name, array in kwargs.items():
                if array.shape[0] != self.blobs[name].shape[0]:
                    raise Exception("Diff is not batch sized")
                self.blobs[name].diff[...] = array
        self._backward(start_index, end_index)
        return {name: self.blobs[name].diff for name in wanted}

    def forward_all(self, blobs: Sequence[str] | None = None, **kwargs: np.ndarray) -> dict[str, np.ndarray]:
        """Forward over whole arrays in batches (the last one zero-padded); returns copies of the
        outputs (and ``blobs``) for every item, padding removed."""
        outs: dict[str, list[np.ndarray]] = {name: [] for name in set(self.outputs + list(blobs or []))}
        for batch in self._batch(kwargs) if kwargs else [{}]:
            for name, array in self.forward(blobs=blobs, **batch).items():
                outs[name].extend(array.copy())
        return _strip_padding({k: np.asarray(v) for k, v in outs.items()}, kwargs)

    def forward_backward_all(self, blobs: Sequence[str] | None = None, diffs: Sequence[str] | None = None,
                             **kwargs: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Forward and backward in batches: ``kwargs`` holds inputs (forward) and output diffs
        (backward). Returns (outputs and ``blobs``, input diffs and ``diffs``), padding removed."""
        outs: dict[str, list[np.ndarray]] = {name: [] for name in set(self.outputs + list(blobs or []))}
        grads: dict[str, list[np.ndarray]] = {name: [] for name in set(self.inputs + list(diffs or []))}
        forward_batches = self._batch({k: kwargs[k] for k in self.inputs if k in kwargs})
        backward_batches = self._batch({k: kwargs[k] for k in self.outputs if k in kwargs})
        no_blobs: dict[str, Any] = {}
        for fb, bb in itertools.zip_longest(forward_batches, backward_batches, fillvalue=no_blobs):
            for name, array in self.forward(blobs=blobs, **fb).items():
                outs[name].extend(array.copy())
            for name, array in self.backward(diffs=diffs, **bb).items():
                grads[name].extend(array.copy())
        return (_strip_padding({k: np.asarray(v) for k, v in outs.items()}, kwargs),
                _strip_padding({k: np.asarray(v) for k, v in grads.items()}, kwargs))

    def set_input_arrays(self, data: np.ndarray, labels: np.ndarray) -> None:
        """Feed a MemoryData first layer from ``data`` (N, C, H, W) and ``labels`` (N or N,1,1,1)."""
        if labels.ndim == 1:
            labels = np.ascontiguousarray(labels[:, np.newaxis, np.newaxis, np.newaxis])
        self._set_input_arrays(data, labels)

    def _batch(self, blobs: Arrays) -> Iterator[dict[str, Any]]:
        """Split equal-length arrays into the net's batch size (the first blob's ``shape[0]``);
        the last batch is zero-padded."""
        if not blobs:
            return
        num = len(next(iter(blobs.values())))
        batch_size = next(iter(self.blobs.values())).shape[0]
        full, remainder = divmod(num, batch_size)
        for b in range(full):
            yield {name: array[b * batch_size:(b + 1) * batch_size] for name, array in blobs.items()}
        if remainder:
            yield {name: np.concatenate([array[-remainder:],
                                         np.zeros((batch_size - remainder,) + array.shape[1:])])
                   for name, array in blobs.items()}


def _strip_padding(outs: dict[str, np.ndarray], inputs: Arrays) -> dict[str, np.ndarray]:
    if not outs or not inputs:
        return outs
    pad = len(next(iter(outs.values()))) - len(next(iter(inputs.values())))
    return {name: array[:-pad] for name, array in outs.items()} if pad > 0 else outs


# ================================================================ solvers
class SolverParameter:
    """``solver.param``: the solver's SolverParameter; ``base_lr`` can be set, other fields read."""

    def __init__(self, solver: Any) -> None:
        object.__setattr__(self, "_solver", solver)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._solver.param, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name != "base_lr":
            raise AttributeError(f"solver.param.{name} is read-only (only base_lr can be set)")
        self._solver.param.base_lr = value

    def __repr__(self) -> str:
        return f"<caffe.SolverParameter of a {self._solver.param.type} solver>"


class Solver:
    """pycaffe's Solver over a recaffe solver: ``net``, ``test_nets``, ``iter``, ``param``,
    ``step``, ``solve``, ``restore``, ``snapshot``, ``apply_update``, ``add_callback``,
    ``share_weights``. The nets are ``caffe.Net`` objects that outlive the solver."""

    solver_type = ""

    def __init__(self, filename: str) -> None:
        param = prototxt.read_solver_param(_caffe._check_file(filename))
        self._attach(SOLVERS.get(self.solver_type or param.type)(param))

    @classmethod
    def _from_native(cls, solver: Any) -> Solver:
        wrapper = cls.__new__(cls)
        wrapper._attach(solver)
        return wrapper

    def _attach(self, solver: Any) -> None:
        self._solver = solver
        self._net = Net._from_native(solver.net)
        self._test_nets = [Net._from_native(net) for net in solver.test_nets]
        self._param = SolverParameter(solver)

    @property
    def net(self) -> Net:
        return self._net

    @property
    def test_nets(self) -> list[Net]:
        return list(self._test_nets)

    @property
    def iter(self) -> int:
        return int(self._solver.iter)

    @property
    def param(self) -> SolverParameter:
        return self._param

    def add_callback(self, on_start: Any, on_gradients_ready: Callable[[], Any] | None = None) -> None:
        """Call ``on_start()`` before each iteration and ``on_gradients_ready()`` before each
        update; or pass one object with those two methods (e.g. an ``NCCL``)."""
        if on_gradients_ready is None:
            on_start, on_gradients_ready = on_start.on_start, on_start.on_gradients_ready
        self._solver.add_callback(synced(on_start), synced(on_gradients_ready))

    def solve(self, resume_file: str | None = None) -> None:
        sync()
        self._solver.solve(resume_file)

    def step(self, iters: int) -> None:
        sync()
        self._solver.step(int(iters))

    def restore(self, state_file: str) -> None:
        sync()
        self._solver.restore(state_file)

    def snapshot(self) -> None:
        sync()
        self._solver.snapshot()

    def apply_update(self) -> None:
        sync()
        self._solver.apply_update()

    def share_weights(self, net: Net) -> None:
        """Make ``net`` use this solver's trained parameter data (by layer name)."""
        sync()
        net._net.share_trained_layers_with(self._solver.net)


class SGDSolver(Solver):
    solver_type = "SGD"

    @property
    def lr(self) -> float:
        """The learning rate of the current iteration (the lr_policy at ``iter``)."""
        return float(self._solver.learning_rate())


class NesterovSolver(SGDSolver):
    solver_type = "Nesterov"


class AdaGradSolver(SGDSolver):
    solver_type = "AdaGrad"


class RMSPropSolver(SGDSolver):
    solver_type = "RMSProp"


class AdaDeltaSolver(SGDSolver):
    solver_type = "AdaDelta"


class AdamSolver(SGDSolver):
    solver_type = "Adam"


_SOLVER_CLASSES = {cls.solver_type: cls for cls in
                   (SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver, AdaDeltaSolver, AdamSolver)}


def get_solver(filename: str) -> Solver:
    """The solver a solver prototxt describes (its ``type``, default SGD)."""
    param = prototxt.read_solver_param(_caffe._check_file(filename))
    return _SOLVER_CLASSES.get(param.type, Solver)._from_native(SOLVERS.get(param.type)(param))
