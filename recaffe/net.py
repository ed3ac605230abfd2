"""Net: a DAG of layers built from a NetParameter, run forward and backward with Caffe's rules."""

from __future__ import annotations

import collections
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

from recaffe import device as devices
from recaffe import errors, fillers, forks, memory_plan, net_builder, threads
from recaffe.blob import Blob
from recaffe.deploy import DeployRunner
from recaffe.io import atomic, blobproto, caffemodel, caffemodel_writer, legacy, prototxt, weights
from recaffe.layer import Layer, LayerError
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS

log = logging.getLogger(__name__)

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST
NetSource = caffe_pb2.NetParameter | str | os.PathLike[str]


@dataclass
class LearnableParam:
    """An owner parameter blob with its effective lr_mult / decay_mult (shared specs merged)."""

    blob: Blob
    lr_mult: float
    decay_mult: float
    has_lr_mult: bool
    has_decay_mult: bool


class Net:
    """Caffe's Net.

    ``Net(source, phase, level=0, stages=())`` reads a prototxt (or takes a NetParameter), sets
    the NetState from the arguments as Caffe's file constructor does, keeps the layers the state
    includes, inserts Split layers, sets every layer up in order, infers which layers need
    backward, and shares named parameters. Given a NetParameter and no phase, its own ``state``
    is used unchanged (Caffe's ``Net(NetParameter)``). A Caffe fork's prototxt (SSD, DenseNet,
    PSPNet) is read in its dialect, detected or named by ``dialect`` (see ``recaffe.forks``).

    ``forward()`` returns the weighted loss; ``backward()`` accumulates into param diffs, which
    only ``clear_param_diffs()`` (called by solvers each iteration) zeroes.
    """

    def __init__(
        self,
        source: NetSource,
        phase: int | None = None,
        level: int = 0,
        stages: Sequence[str] = (),
        *,
        weights_file: str | os.PathLike[str] | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        optimize: bool = False,
        dialect: str | None = None,
    ) -> None:
        param = _load(source, dialect)
        if phase is not None:
            param.state.phase = caffe_pb2.Phase.ValueType(phase)
            param.state.stage.extend(stages)
            param.state.level = level
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else devices.default_device()
        self.before_forward: list[Callable[[int], None]] = []
        self.after_forward: list[Callable[[int], None]] = []
        self.before_backward: list[Callable[[int], None]] = []
        self.after_backward: list[Callable[[int], None]] = []
        self.deploy: DeployRunner | None = None
        # with weights to come, the fillers' draws wait: the weights may make their values unneeded
        with net_builder.one_thread():
            with net_builder.building(None if isinstance(source, caffe_pb2.NetParameter) else source), \
                    fillers.deferring(weights_file is not None) as deferred:
                self._init(param)
            if weights_file is not None:
                self.fill_what_weights_missed(deferred, self.copy_trained_layers_from(weights_file))
        if optimize:  # deploy mode: fused layers, blob memory reused (recaffe/deploy.py)
            self.deploy = DeployRunner(self)

    # ================================================================ building
    def _init(self, in_param: caffe_pb2.NetParameter) -> None:
        self.phase = in_param.state.phase
        param = net_builder.insert_splits(net_builder.filter_net(in_param))
        self.name = param.name
        self.debug_info = param.debug_info
        self.layers: list[Layer] = []
        self.layer_names: list[str] = []
        self.bottom_vecs: list[list[Blob]] = []
        self.top_vecs: list[list[Blob]] = []
        self.bottom_id_vecs: list[list[int]] = []
        self.top_id_vecs: list[list[int]] = []
        self.param_id_vecs: list[list[int]] = []
        self.bottom_need_backward: list[list[bool]] = []
        self.layer_need_backward: list[bool] = []
        self.blob_list: list[Blob] = []
        self.blob_names: list[str] = []
        self.blob_need_backward: list[bool] = []
        self.blob_loss_weights: list[float] = []
        self.input_blob_indices: list[int] = []
        self.output_blob_indices: list[int] = []
        self.params: list[Blob] = []
        self.param_owners: list[int] = []
        self.param_layer_indices: list[tuple[int, int]] = []
        self.param_display_names: list[str] = []
        self.learnable_params: list[LearnableParam] = []
        self.learnable_param_ids: list[int] = []
        self._param_names_index: dict[str, int] = {}
        blob_index: dict[str, int] = {}
        available: set[str] = set()
        memory_used = 0
        for layer_id, layer_param in enumerate(param.layer):
            if not layer_param.HasField("phase"):
                layer_param.phase = self.phase
            layer = self._create_layer(layer_param)
            self.layers.append(layer)
            self.layer_names.append(layer_param.name)
            for lst in (self.bottom_vecs, self.top_vecs, self.bottom_id_vecs, self.top_id_vecs,
                        self.param_id_vecs, self.bottom_need_backward):
                lst.append([])
            need_backward = False
            for bottom_id in range(len(layer_param.bottom)):
                blob_id = self._append_bottom(layer_param, layer_id, bottom_id, available, blob_index)
                need_backward |= self.blob_need_backward[blob_id]
            for top_id in range(len(layer_param.top)):
                self._append_top(layer_param, layer_id, top_id, available, blob_index)
                if layer_param.type == "Input":
                    self.input_blob_indices.append(len(self.blob_list) - 1)
            if layer.auto_top_blobs:
                needed = max(layer.min_top_blobs, layer.exact_num_top_blobs)
                for top_id in range(len(layer_param.top), needed):
                    self._append_top(layer_param, layer_id, top_id, None, None)
            self._setup_layer(layer_id)
            for top_id, blob_id in enumerate(self.top_id_vecs[layer_id]):
                if len(self.blob_loss_weights) <= blob_id:
                    self.blob_loss_weights.extend([0.0] * (blob_id + 1 - len(self.blob_loss_weights)))
                self.blob_loss_weights[blob_id] = layer.loss(top_id)
                blob = self.top_vecs[layer_id][top_id]
                if log.isEnabledFor(logging.INFO):  # (the shape's string only when it is logged)
                    log.info("Top shape: %s", blob.shape_string())
                if layer.loss(top_id):
                    log.info("    with loss weight %g", layer.loss(top_id))
                memory_used += blob.count()
            log.info("Memory required for data: %d", memory_used * self._itemsize())
            need_backward |= self._set_param_propagation(layer_id)
            for param_id in range(len(layer.blobs)):
                self._append_param(layer_id, param_id)
            self.layer_need_backward.append(need_backward)
            if need_backward:
                for blob_id in self.top_id_vecs[layer_id]:
                    self.blob_need_backward[blob_id] = True
        self._infer_backward()
        if param.force_backward:
            self._force_backward()
        for layer, need in zip(self.layers, self.layer_need_backward):
            layer.need_backward = need
        for name in sorted(available):
            log.info("This network produces output %s", name)
            self.output_blob_indices.append(blob_index[name])
        self._blob_names_index = {name: i for i, name in enumerate(self.blob_names)}
        self._layer_names_index = {name: i for i, name in enumerate(self.layer_names)}
        self.share_weights()
        log.info("Network initialization done.")

    def _itemsize(self) -> int:
        return self.dtype.itemsize

    def _create_layer(self, layer_param: caffe_pb2.LayerParameter) -> Layer:
        if layer_param.propagate_down and len(layer_param.propagate_down) != len(layer_param.bottom):
            raise LayerError(
                f"layer {layer_param.name!r} ({layer_param.type}): propagate_down must be given "
                f"either 0 or {len(layer_param.bottom)} (bottom count) times, "
                f"got {len(layer_param.propagate_down)}"
            )
        log.info("Creating Layer %s", layer_param.name)
        try:
            layer_class = LAYERS.get(layer_param.type, forks.layer_dialect(layer_param))
        except KeyError as e:
            raise LayerError(f"layer {layer_param.name!r}: {e}") from None
        return layer_class(layer_param, dtype=self.dtype, device=self.device)

    def _setup_layer(self, layer_id: int) -> None:
        layer = self.layers[layer_id]
        try:
            layer.setup(self.bottom_vecs[layer_id], self.top_vecs[layer_id])
        except LayerError:
            raise
        except (ValueError, RuntimeError, IndexError, TypeError) as e:
            raise LayerError(f"{layer.describe()}: setup failed: {e}") from e
        log.info("Setting up %s", layer.name)

    def _append_top(
        self,
        layer_param: caffe_pb2.LayerParameter,
        layer_id: int,
        top_id: int,
        available: set[str] | None,
        blob_index: dict[str, int] | None,
    ) -> None:
        name = layer_param.top[top_id] if top_id < len(layer_param.top) else "(automatic)"
        if blob_index is not None and top_id < len(layer_param.bottom) and name == layer_param.bottom[top_id]:
            log.info("%s -> %s (in-place)", layer_param.name, name)
            blob_id = blob_index[name]
        elif blob_index is not None and name in blob_index:
            raise LayerError(
                f"layer {layer_param.name!r}: top blob {name!r} produced by multiple sources "
                f"(only the bottom at the same index may be reused in place)"
            )
        else:
            log.info("%s -> %s", layer_param.name, name)
            blob_id = len(self.blob_list)
            self.blob_list.append(Blob(dtype=self.dtype, device=self.device))
            self.blob_names.append(name)
            self.blob_need_backward.append(False)
            if blob_index is not None:
                blob_index[name] = blob_id
        self.top_id_vecs[layer_id].append(blob_id)
        self.top_vecs[layer_id].append(self.blob_list[blob_id])
        if available is not None:
            available.add(name)

    def _append_bottom(
        self,
        layer_param: caffe_pb2.LayerParameter,
        layer_id: int,
        bottom_id: int,
        available: set[str],
        blob_index: dict[str, int],
    ) -> int:
        name = layer_param.bottom[bottom_id]
        if name not in available:
            raise LayerError(
                f"Unknown bottom blob {name!r} (layer {layer_param.name!r}, bottom index {bottom_id})"
            )
        blob_id = blob_index[name]
        log.info("%s <- %s", layer_param.name, name)
        self.bottom_vecs[layer_id].append(self.blob_list[blob_id])
        self.bottom_id_vecs[layer_id].append(blob_id)
        available.discard(name)
        need = self.blob_need_backward[blob_id]
        if layer_param.propagate_down:
            need = layer_param.propagate_down[bottom_id]
        self.bottom_need_backward[layer_id].append(need)
        return blob_id

    def _set_param_propagation(self, layer_id: int) -> bool:
        """param_propagate_down from lr_mult != 0; returns whether any param needs a gradient."""
        layer = self.layers[layer_id]
        specs = layer.param.param
        if len(specs) > len(layer.blobs):
            raise LayerError(
                f"{layer.describe()}: {len(specs)} param specs given but the layer has only "
                f"{len(layer.blobs)} parameter blob(s)"
            )
        need = False
        for param_id in range(len(layer.blobs)):
            spec = specs[param_id] if param_id < len(specs) else caffe_pb2.ParamSpec()
            need |= spec.lr_mult != 0
            layer.set_param_propagate_down(param_id, spec.lr_mult != 0)
        return need

    def _append_param(self, layer_id: int, param_id: int) -> None:
        layer = self.layers[layer_id]
        specs = layer.param.param
        spec = specs[param_id] if param_id < len(specs) else caffe_pb2.ParamSpec()
        name = spec.name
        self.param_display_names.append(name or str(param_id))
        net_param_id = len(self.params)
        self.params.append(layer.blobs[param_id])
        self.param_id_vecs[layer_id].append(net_param_id)
        self.param_layer_indices.append((layer_id, param_id))
        if not name or name not in self._param_names_index:
            self.param_owners.append(-1)
            if name:
                self._param_names_index[name] = net_param_id
            self.learnable_param_ids.append(len(self.learnable_params))
            self.learnable_params.append(LearnableParam(
                layer.blobs[param_id], spec.lr_mult, spec.decay_mult,
                spec.HasField("lr_mult"), spec.HasField("decay_mult"),
            ))
            return
        owner_id = self._param_names_index[name]
        self.param_owners.append(owner_id)
        owner_layer, owner_param = self.param_layer_indices[owner_id]
        log.info("Sharing parameters %r owned by layer %r, param index %d",
                 name, self.layer_names[owner_layer], owner_param)
        this_blob, owner_blob = layer.blobs[param_id], self.layers[owner_layer].blobs[owner_param]
        where = (f"cannot share param {name!r} owned by layer {self.layer_names[owner_layer]!r} "
                 f"with layer {layer.name!r}")
        if spec.share_mode == caffe_pb2.ParamSpec.PERMISSIVE:
            if this_blob.count() != owner_blob.count():
                raise LayerError(f"{where}: count mismatch, owner shape {owner_blob.shape}, "
                                 f"sharing layer shape {this_blob.shape}")
        elif this_blob.shape != owner_blob.shape:
            raise LayerError(f"{where}: shape mismatch, owner shape {owner_blob.shape}, "
                             f"sharing layer expects {this_blob.shape}")
        learnable_id = self.learnable_param_ids[owner_id]
        self.learnable_param_ids.append(learnable_id)
        owner = self.learnable_params[learnable_id]
        for field, has_field in (("lr_mult", "has_lr_mult"), ("decay_mult", "has_decay_mult")):
            if not spec.HasField(field):  # type: ignore[arg-type]  # names from a table
                continue
            value = getattr(spec, field)
            if getattr(owner, has_field):
                if value != getattr(owner, field):
                    raise LayerError(f"shared param {name!r} has mismatched {field} "
                                     f"({value} in layer {layer.name!r}, {getattr(owner, field)} before)")
            else:
                setattr(owner, has_field, True)
                setattr(owner, field, value)

    def _infer_backward(self) -> None:
        """Caffe's reverse pass: skip layers that feed no loss or whose tops all skip backprop."""
        under_loss: set[str] = set()
        skip_backprop: set[str] = set()
        for layer_id in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[layer_id]
            contributes = False
            skip_all = True
            for top_id, blob_id in enumerate(self.top_id_vecs[layer_id]):
                name = self.blob_names[blob_id]
                if layer.loss(top_id) or name in under_loss:
                    contributes = True
                if name not in skip_backprop:
                    skip_all = False
                if contributes and not skip_all:
                    break
            if self.layer_need_backward[layer_id] and skip_all:
                self.layer_need_backward[layer_id] = False
                self.bottom_need_backward[layer_id] = [False] * len(self.bottom_vecs[layer_id])
            if not contributes:
                self.layer_need_backward[layer_id] = False
            log.info("%s %s backward computation.", layer.name,
                     "needs" if self.layer_need_backward[layer_id] else "does not need")
            for bottom_id, blob_id in enumerate(self.bottom_id_vecs[layer_id]):
                name = self.blob_names[blob_id]
                if contributes:
                    under_loss.add(name)
                else:
                    self.bottom_need_backward[layer_id][bottom_id] = False
                if not self.bottom_need_backward[layer_id][bottom_id]:
                    skip_backprop.add(name)

    def _force_backward(self) -> None:
        for layer_id, layer in enumerate(self.layers):
            self.layer_need_backward[layer_id] = True
            for bottom_id, blob_id in enumerate(self.bottom_id_vecs[layer_id]):
                need = self.bottom_need_backward[layer_id][bottom_id] or layer.allow_force_backward(bottom_id)
                self.bottom_need_backward[layer_id][bottom_id] = need
                self.blob_need_backward[blob_id] = self.blob_need_backward[blob_id] or need
            for param_id in range(len(layer.blobs)):
                layer.set_param_propagate_down(param_id, True)

    def share_weights(self) -> None:
        """Make every sharing param use its owner's data and diff storage."""
        for param_id, owner in enumerate(self.param_owners):
            if owner >= 0:
                self.params[param_id].share_data(self.params[owner])
                self.params[param_id].share_diff(self.params[owner])

    # ================================================================ running
    def forward(self, start: int = 0, end: int | None = None, keep: Iterable[str | int] = ()) -> float:
        """Caffe's ForwardFromTo(start, end) (both inclusive); returns the weighted loss.

        In deploy mode (``optimize=True``) only the inputs, outputs and the blobs named (or
        indexed) in ``keep`` are readable afterwards; otherwise every blob is.
        """
        end = len(self.layers) - 1 if end is None else end
        if not (start >= 0 and end < len(self.layers)):
            raise IndexError(f"forward range {start}..{end} outside the net's {len(self.layers)} layers")
        loss: torch.Tensor | float = 0.0
        if self.deploy is not None:
            with torch.no_grad():
                return self.deploy.forward(start, end, keep)
        threads.before_forward()
        with torch.no_grad():
            for i in range(start, end + 1):
                for callback in self.before_forward:
                    callback(i)
                loss = loss + self.layers[i].run_forward(self.bottom_vecs[i], self.top_vecs[i])
                if self.debug_info:
                    self._forward_debug_info(i)
                for callback in self.after_forward:
                    callback(i)
        return float(loss)

    def backward(self, start: int | None = None, end: int = 0) -> None:
        """Caffe's BackwardFromTo(start, end): layers start down to end, both inclusive."""
        start = len(self.layers) - 1 if start is None else start
        if not (end >= 0 and start < len(self.layers)):
            raise IndexError(f"backward range {start}..{end} outside the net's {len(self.layers)} layers")
        with torch.no_grad():
            for i in range(start, end - 1, -1):
                for callback in self.before_backward:
                    callback(i)
                if self.layer_need_backward[i]:
                    self.layers[i].run_backward(
                        self.top_vecs[i], self.bottom_need_backward[i], self.bottom_vecs[i])
                    if self.debug_info:
                        self._backward_debug_info(i)
                for callback in self.after_backward:
                    callback(i)
        if self.debug_info and start == len(self.layers) - 1 and end == 0:
            self._params_debug_info()

    def forward_backward(self) -> float:
        loss = self.forward()
        self.backward()
        return loss

    def reshape(self) -> None:
        for layer, bottom, top in zip(self.layers, self.bottom_vecs, self.top_vecs):
            layer.reshape(bottom, top)
        if self.deploy is not None:  # memory allocated from now on fits the new shapes
            memory_plan.fit_unallocated(self.blob_list)

    def update(self) -> None:
        """``data -= diff`` for every owner (learnable) parameter."""
        for learnable in self.learnable_params:
            learnable.blob.update()

    def clear_param_diffs(self) -> None:
        for learnable in self.learnable_params:
            learnable.blob.diff.zero_()

    # ================================================================ lookup
    @property
    def blobs(self) -> collections.OrderedDict[str, Blob]:
        """Blob name -> Blob, in net order (pycaffe's ``net.blobs``)."""
        return collections.OrderedDict(zip(self.blob_names, self.blob_list))

    @property
    def layer_params(self) -> collections.OrderedDict[str, list[Blob]]:
        """Layer name -> its parameter blobs, for layers that have any (pycaffe's ``net.params``)."""
        return collections.OrderedDict(
            (name, layer.blobs) for name, layer in zip(self.layer_names, self.layers) if layer.blobs
        )

    @property
    def inputs(self) -> list[str]:
        return [self.blob_names[i] for i in self.input_blob_indices]

    @property
    def outputs(self) -> list[str]:
        return [self.blob_names[i] for i in self.output_blob_indices]

    def output_elements(self) -> list[tuple[str, float]]:
        """(blob name, loss weight) of each element of the output blobs, in ``output_values`` order
        (how Caffe's solver and ``caffe test`` label "output #i")."""
        return [(self.blob_names[i], self.blob_loss_weights[i])
                for i in self.output_blob_indices for _ in range(self.blob_list[i].count())]

    def output_values(self) -> torch.Tensor:
        """Every element of the output blobs, flattened and joined in output order."""
        return torch.cat([self.blob_list[i].data.reshape(-1) for i in self.output_blob_indices]
                         or [torch.zeros(0, dtype=self.dtype, device=self.device)])

    def has_blob(self, name: str) -> bool:
        return name in self._blob_names_index

    def blob_by_name(self, name: str) -> Blob:
        if name not in self._blob_names_index:
            raise KeyError(f"net {self.name!r} has no blob {name!r}")
        return self.blob_list[self._blob_names_index[name]]

    def has_layer(self, name: str) -> bool:
        return name in self._layer_names_index

    def layer_by_name(self, name: str) -> Layer:
        if name not in self._layer_names_index:
            raise KeyError(f"net {self.name!r} has no layer {name!r}")
        return self.layers[self._layer_names_index[name]]

    def layer_index(self, name: str) -> int:
        if name not in self._layer_names_index:
            raise KeyError(f"net {self.name!r} has no layer {name!r}")
        return self._layer_names_index[name]

    # ================================================================ weights
    def share_trained_layers_with(self, other: Net) -> None:
        """Use ``other``'s parameter data (not diffs) in same-named layers (test nets do this)."""
        for source_name, source in zip(other.layer_names, other.layers):
            if source_name not in self._layer_names_index:
                log.info("Ignoring source layer %s", source_name)
                continue
            target = self.layers[self._layer_names_index[source_name]]
            if len(target.blobs) != len(source.blobs):
                raise LayerError(f"incompatible number of blobs for layer {source_name!r}: "
                                 f"{len(source.blobs)} in the source, {len(target.blobs)} here")
            for j, (mine, theirs) in enumerate(zip(target.blobs, source.blobs)):
                if mine.shape != theirs.shape:
                    raise LayerError(
                        f"cannot share param {j} weights from layer {source_name!r}: shape mismatch, "
                        f"source {theirs.shape}, target {mine.shape}")
                mine.share_data(theirs)

    def copy_trained_layers_from(self, source: caffe_pb2.NetParameter | str | os.PathLike[str]) -> set[str]:
        """Copy weights by layer name from a NetParameter, a .caffemodel, or an HDF5 weights file;
        returns the names of the layers copied.

        A legacy (V0/V1) caffemodel is read without upgrading it first: the upgrade would only
        copy every blob into new layers, and the names and blobs are the same either way.
        """
        with net_builder.one_thread():  # (small copies: extra threads only wait for each other)
            copied = self._copy_trained_layers(source)
        self._warn_partial_weights(copied, source if not isinstance(source, caffe_pb2.NetParameter)
                                   else "<weights>")
        return copied

    def _copy_trained_layers(self, source: caffe_pb2.NetParameter | str | os.PathLike[str]) -> set[str]:
        if self.deploy is not None:
            self.deploy.unfold_all()
        if isinstance(source, caffe_pb2.NetParameter):
            copied = self._copy_layers((name, [caffemodel.MessageBlob(b) for b in blobs])
                                       for name, blobs in legacy.trained_layers(source, "<weights>"))
        elif weights.is_hdf5(source):
            copied = weights.load_hdf5_weights(self, source)
        else:  # streamed from the file: its values go straight into the blobs
            with errors.read_guard(source, "caffemodel"):
                copied = self._copy_layers(caffemodel.read_trained_layers(source), os.fspath(source))
        return copied

    def fill_what_weights_missed(self, deferred: list[fillers.DeferredFill], copied: set[str]) -> None:
        """After the weights of the layers ``copied`` went into a net built inside
        ``fillers.deferring()`` (its fills ``deferred``): the fills the weights overwrote only move
        Caffe's random stream (lazily), the others give their blobs their values, in Caffe's order."""
        fillers.keep_needed(deferred, self._unread_fill(copied))

    def _unread_fill(self, copied: set[str]) -> Callable[[Blob], bool]:
        """Whether a parameter blob's filled values are never read: its storage took the weights
        of a layer ``copied`` (its own, or one sharing it), or it took a shared owner's data."""
        first = self._first_layer_index()
        loaded = {blob.data_storage_key() for name in copied for blob in self.layers[first[name]].blobs}
        sharing = {id(self.params[i]) for i, owner in enumerate(self.param_owners) if owner >= 0}
        return lambda blob: blob.data_storage_key() in loaded or id(blob) in sharing

    def _first_layer_index(self) -> dict[str, int]:
        """Each layer name's first layer (the one that takes copied weights, as in Caffe)."""
        first: dict[str, int] = {}
        for i, name in enumerate(self.layer_names):
            first.setdefault(name, i)
        return first

    def _warn_partial_weights(self, copied: set[str], source: str | os.PathLike[str]) -> None:
        """Caffe accepts weights covering only some layers; say which ones keep their fillers."""
        left = [name for name, layer in zip(self.layer_names, self.layers)
                if layer.blobs and name not in copied and layer.type != "Split"]
        if left:
            log.warning("%s covers only some layers of net %s; these are left at their fillers: %s",
                        os.fspath(source), self.name, ", ".join(left))

    def _copy_layers(self, layers: Iterable[tuple[str, Sequence[caffemodel.StoredBlob]]],
                     source: str = "<weights>") -> set[str]:
        # the first target layer of a source layer's name receives its blobs (layer types are not compared)
        copied = set()
        first = self._first_layer_index()
        for name, blobs in layers:
            if name not in self._layer_names_index:
                log.info("Ignoring source layer %s", name)
                continue
            copied.add(name)
            target = self.layers[first[name]]
            if len(target.blobs) != len(blobs):
                raise LayerError(f"{source}: incompatible number of blobs for layer {name!r}: "
                                 f"{len(blobs)} in the weights, {len(target.blobs)} in the net")
            for j, (blob, stored) in enumerate(zip(target.blobs, blobs)):
                proto = stored.header
                if not blobproto.shape_equals(blob.shape, proto):
                    raise LayerError(
                        f"{source}: cannot copy param {j} weights from layer {name!r}; shape mismatch. "
                        f"Source param shape is {blobproto.proto_shape(proto)}; target param shape is "
                        f"{blob.shape}. To learn this layer's parameters from scratch rather than "
                        f"copying from a saved net, rename the layer.")
                stored.load_into(blob)
        return copied

    def to_proto(self, write_diff: bool = False) -> caffe_pb2.NetParameter:
        """The net as Caffe serialises it: its name and every layer (Splits too) with blobs."""
        param = caffe_pb2.NetParameter(name=self.name)
        for layer in self.layers:
            layer.to_proto(write_diff, out=param.layer.add())
        return param

    def save(self, path: str | os.PathLike[str], write_diff: bool = False) -> None:
        """Write a binary ``.caffemodel``: the bytes of ``to_proto(write_diff)``, each blob's values
        written from its tensor (``recaffe.io.caffemodel_writer``: no copy of the weights is held)."""
        with atomic.replace(path, "caffemodel") as temp, open(temp, "wb") as f:
            caffemodel_writer.write_net(f, self.name, self.layers, write_diff)

    def save_hdf5(self, path: str | os.PathLike[str], write_diff: bool = False) -> None:
        weights.save_hdf5_weights(self, path, write_diff)

    def load_hdf5(self, path: str | os.PathLike[str]) -> None:
        if self.deploy is not None:
            self.deploy.unfold_all()
        weights.load_hdf5_weights(self, path)

    # ================================================================ debug info
    def _forward_debug_info(self, layer_id: int) -> None:
        for blob_id, blob in zip(self.top_id_vecs[layer_id], self.top_vecs[layer_id]):
            log.info("    [Forward] Layer %s, top blob %s data: %g", self.layer_names[layer_id],
                     self.blob_names[blob_id], blob.asum_data() / max(blob.count(), 1))
        for param_id, blob in zip(self.param_id_vecs[layer_id], self.layers[layer_id].blobs):
            log.info("    [Forward] Layer %s, param blob %s data: %g", self.layer_names[layer_id],
                     self.param_display_names[param_id], blob.asum_data() / max(blob.count(), 1))

    def _backward_debug_info(self, layer_id: int) -> None:
        for bottom_id, blob in enumerate(self.bottom_vecs[layer_id]):
            if self.bottom_need_backward[layer_id][bottom_id]:
                name = self.blob_names[self.bottom_id_vecs[layer_id][bottom_id]]
                log.info("    [Backward] Layer %s, bottom blob %s diff: %g", self.layer_names[layer_id],
                         name, blob.asum_diff() / max(blob.count(), 1))
        layer = self.layers[layer_id]
        for param_id, blob in enumerate(layer.blobs):
            if param_id < len(layer.param_propagate_down) and layer.param_propagate_down[param_id]:
                log.info("    [Backward] Layer %s, param blob %d diff: %g", self.layer_names[layer_id],
                         param_id, blob.asum_diff() / max(blob.count(), 1))

    def _params_debug_info(self) -> None:
        blobs = [p.blob for p in self.learnable_params]
        asum_data = sum(b.asum_data() for b in blobs)
        asum_diff = sum(b.asum_diff() for b in blobs)
        l2_data = sum(b.sumsq_data() for b in blobs) ** 0.5
        l2_diff = sum(b.sumsq_diff() for b in blobs) ** 0.5
        log.info("    [Backward] All net params (data, diff): L1 norm = (%g, %g); L2 norm = (%g, %g)",
                 asum_data, asum_diff, l2_data, l2_diff)

    def __repr__(self) -> str:
        return f"<Net {self.name!r}: {len(self.layers)} layers, phase {caffe_pb2.Phase.Name(self.phase)}>"


def _load(source: NetSource, dialect: str | None = None) -> caffe_pb2.NetParameter:
    if isinstance(source, caffe_pb2.NetParameter):
        param = caffe_pb2.NetParameter()
        param.CopyFrom(source)
        from recaffe.io import upgrade

        return upgrade.upgrade_net(param)
    return prototxt.read_net_param(source, dialect)
