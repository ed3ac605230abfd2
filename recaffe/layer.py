"""Layer: the abstract base every registered layer type derives from."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, final

import torch
from google.protobuf.descriptor import FieldDescriptor

from recaffe import errors, fillers, rng
from recaffe.blob import Blob, BlobShapeError
from recaffe.io import blobproto
from recaffe.proto import caffe_pb2

Blobs = Sequence[Blob]


class LayerError(errors.RecaffeError, ValueError):
    """A layer's parameters or inputs are invalid; the message names the layer."""


class Layer:
    """Caffe's Layer: set up from a LayerParameter, then forward and backward over blobs.

    A subclass implements the hooks ``layer_setup`` (optional), ``reshape``, ``forward`` and
    ``backward``, and declares its blob counts with class attributes. The wrappers ``setup``,
    ``run_forward`` and ``run_backward`` are final: they check blob counts, reshape before every
    forward as Caffe does, and compute the weighted loss ``Σ top.data · top.diff`` over the tops
    that carry a loss weight (the weight lives in the top's diff, written once at setup).

    Backward contract: assign bottom diffs, accumulate param diffs, honour ``propagate_down`` and
    ``param_propagate_down``. ``need_backward`` is False when the Net will never run this layer's
    backward (an inference net), so forward may skip keeping what only backward reads.
    """

    type: ClassVar[str] = ""
    exact_num_bottom_blobs: ClassVar[int] = -1
    min_bottom_blobs: ClassVar[int] = -1
    max_bottom_blobs: ClassVar[int] = -1
    exact_num_top_blobs: ClassVar[int] = -1
    min_top_blobs: ClassVar[int] = -1
    max_top_blobs: ClassVar[int] = -1
    equal_num_bottom_top_blobs: ClassVar[bool] = False
    auto_top_blobs: ClassVar[bool] = False
    supports_in_place: ClassVar[bool] = False  # True only where Caffe runs the layer in place
    # True where forward takes ``workers=`` (recaffe.workers) to share its pieces among threads
    shares_work: ClassVar[bool] = False

    def __init__(
        self,
        param: caffe_pb2.LayerParameter,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        self.param = caffe_pb2.LayerParameter()
        self.param.CopyFrom(param)
        self.phase: caffe_pb2.Phase.ValueType = self.param.phase
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        # Weights embedded in the LayerParameter (prototxt or caffemodel) replace the fillers.
        self.blobs: list[Blob] = [
            blobproto.blob_from_proto(b, dtype=dtype, device=self.device) for b in self.param.blobs
        ]
        del self.param.blobs[:]  # keep one copy of the weights, not two
        self.param_propagate_down: list[bool] = []
        self.loss_weights: list[float] = []
        self.need_backward = True  # the Net sets its own answer after setup

    # ------------------------------------------------------------- identity
    @property
    def name(self) -> str:
        return self.param.name

    def describe(self) -> str:
        """``layer 'name' (Type)``: how error messages name this layer."""
        return f"layer {self.name!r} ({self.type})"

    def error(self, message: str) -> LayerError:
        return LayerError(f"{self.describe()}: {message}")

    def from_forward(self, value: torch.Tensor | None, what: str) -> torch.Tensor:
        """``value``, something forward keeps for backward; an error naming the layer if it was not kept."""
        if value is None:
            raise self.error(f"backward needs {what}, which forward did not keep (run forward first, "
                             f"in a net that needs backward)")
        return value

    # ---------------------------------------------------------------- hooks
    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        """Read and validate parameters, create ``self.blobs``. Runs once."""

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        raise NotImplementedError

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        raise NotImplementedError

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if any(propagate_down):
            raise self.error("this layer type cannot propagate gradients to its bottoms")

    def allow_force_backward(self, bottom_index: int) -> bool:
        return True

    # -------------------------------------------------------------- wrappers
    @final
    def setup(self, bottom: Blobs, top: Blobs) -> None:
        self.check_blob_counts(bottom, top)
        if not self.supports_in_place and any(t is b for t in top for b in bottom):
            raise self.error("in-place computation is not supported; give the top its own name")
        with torch.no_grad(), self.shape_errors():
            self.layer_setup(bottom, top)
            self.reshape(bottom, top)
            for index, blob in enumerate(top):  # a zero size from the prototxt (a layer may give one itself)
                if 0 in blob.shape and shape_fields(self.param, blob.shape):
                    raise BlobShapeError(f"top {self._top_name(index)} has shape {blob.shape}, which holds "
                                         f"no values (a size of 0)", blob.shape)
            self.set_loss_weights(top)

    @final
    def run_forward(self, bottom: Blobs, top: Blobs, kernel: Callable[[Blobs, Blobs], None] | None = None,
                    reshape: bool = True) -> torch.Tensor | float:
        """Reshape (unless the caller knows the tops have their shapes already), forward (or
        ``kernel``, deploy mode's version of it), and return the weighted loss of this layer's tops.
        Runs with autograd off (a caller that has turned it off already saves entering it again)."""
        if torch.is_grad_enabled():
            with torch.no_grad():
                return self.run_forward(bottom, top, kernel, reshape)
        if reshape:
            with self.shape_errors():
                self.reshape(bottom, top)
        try:
            (kernel or self.forward)(bottom, top)
        except errors.RecaffeError:
            raise
        except (RuntimeError, ValueError, IndexError, MemoryError) as e:
            raise self.error(self._forward_failure(bottom, e)) from e
        loss: torch.Tensor | float = 0.0
        for weight, blob in zip(self.loss_weights, top):
            if weight:
                loss = loss + torch.dot(blob.data.reshape(-1), blob.diff.reshape(-1))
        return loss

    @final
    def run_backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        with torch.no_grad():
            self.backward(top, propagate_down, bottom)

    # -------------------------------------------------------------- helpers
    @contextlib.contextmanager
    def shape_errors(self) -> Iterator[None]:
        """Re-raise an impossible blob shape as this layer's error, naming the fields it came from."""
        try:
            yield
        except BlobShapeError as e:
            fields = shape_fields(self.param, e.dims)
            raise self.error(f"{e}" + (f" (from {', '.join(fields)})" if fields else "")) from e

    def _forward_failure(self, bottom: Blobs, e: BaseException) -> str:
        for index, blob in enumerate(bottom):
            if blob.count() == 0:
                name = repr(self.param.bottom[index]) if index < len(self.param.bottom) else str(index)
                return f"bottom {name} has shape {blob.shape}, which holds no values (a size of 0)"
        return f"forward failed on bottoms of shapes {[b.shape for b in bottom]}: {errors.describe(e)}"

    def _top_name(self, index: int) -> str:
        return repr(self.param.top[index]) if index < len(self.param.top) else str(index)

    def check_blob_counts(self, bottom: Blobs, top: Blobs) -> None:
        nb, nt = len(bottom), len(top)
        checks = [  # (the messages are made only for a failed check)
            (self.exact_num_bottom_blobs >= 0 and nb != self.exact_num_bottom_blobs,
             lambda: f"takes {self.exact_num_bottom_blobs} bottom blob(s) as input, got {nb}"),
            (self.min_bottom_blobs >= 0 and nb < self.min_bottom_blobs,
             lambda: f"takes at least {self.min_bottom_blobs} bottom blob(s) as input, got {nb}"),
            (self.max_bottom_blobs >= 0 and nb > self.max_bottom_blobs,
             lambda: f"takes at most {self.max_bottom_blobs} bottom blob(s) as input, got {nb}"),
            (self.exact_num_top_blobs >= 0 and nt != self.exact_num_top_blobs,
             lambda: f"produces {self.exact_num_top_blobs} top blob(s) as output, got {nt}"),
            (self.min_top_blobs >= 0 and nt < self.min_top_blobs,
             lambda: f"produces at least {self.min_top_blobs} top blob(s) as output, got {nt}"),
            (self.max_top_blobs >= 0 and nt > self.max_top_blobs,
             lambda: f"produces at most {self.max_top_blobs} top blob(s) as output, got {nt}"),
            (self.equal_num_bottom_top_blobs and nb != nt,
             lambda: f"produces one top blob per bottom blob, got {nb} bottoms and {nt} tops"),
        ]
        for failed, message in checks:
            if failed:
                raise self.error(message())

    def set_loss_weights(self, top: Blobs) -> None:
        weights = list(self.param.loss_weight)
        if not weights:
            return
        if len(weights) != len(top):
            raise self.error(
                f"loss_weight must be unspecified or given once per top blob "
                f"({len(top)} tops, {len(weights)} loss_weight values)"
            )
        for i, (weight, blob) in enumerate(zip(weights, top)):
            if weight:
                self.set_loss(i, weight)
                blob.diff.fill_(weight)

    def loss(self, top_index: int) -> float:
        return self.loss_weights[top_index] if top_index < len(self.loss_weights) else 0.0

    def set_loss(self, top_index: int, value: float) -> None:
        if len(self.loss_weights) <= top_index:
            self.loss_weights.extend([0.0] * (top_index + 1 - len(self.loss_weights)))
        self.loss_weights[top_index] = value

    def set_param_propagate_down(self, param_index: int, value: bool) -> None:
        if len(self.param_propagate_down) <= param_index:
            self.param_propagate_down.extend([True] * (param_index + 1 - len(self.param_propagate_down)))
        self.param_propagate_down[param_index] = value

    def new_blob(
        self, shape: Sequence[int], filler: caffe_pb2.FillerParameter | None = None
    ) -> Blob:
        """A blob on this layer's device, filled by ``filler`` (default: constant 0)."""
        blob = Blob(shape, dtype=self.dtype, device=self.device)
        if filler is not None:
            fillers.fill_param(blob, filler, rng.get_rng())
        return blob

    def to_proto(
        self, write_diff: bool = False, out: caffe_pb2.LayerParameter | None = None
    ) -> caffe_pb2.LayerParameter:
        """This layer's LayerParameter with its current blobs (Layer::ToProto), into ``out`` if given."""
        out = caffe_pb2.LayerParameter() if out is None else out
        out.CopyFrom(self.param)
        for blob in self.blobs:
            blobproto.blob_to_proto(blob, write_diff, out.blobs.add())
        return out

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


_IMPLAUSIBLE = 2**24  # a dim, kernel, pad or output count this large is where a huge shape comes from


def shape_fields(param: caffe_pb2.LayerParameter, dims: Sequence[int]) -> list[str]:
    """``field: value`` of the layer's parameters that explain the shape ``dims``: implausibly large
    values, else zeros when the shape has a zero."""
    found: list[tuple[str, int]] = []

    def walk(message: Any, prefix: str) -> None:
        for field, value in message.ListFields():
            name = f"{prefix}{field.name}"
            if field.type == field.TYPE_MESSAGE:
                for item in value if field.is_repeated else [value]:
                    walk(item, name + ".")
            elif field.cpp_type in _INTEGER_TYPES:
                found.extend((name, v) for v in (value if field.is_repeated else [value]))

    for field, value in param.ListFields():
        if field.type == field.TYPE_MESSAGE and field.name.endswith("_param"):
            walk(value, field.name + ".")
    big = [f"{name}: {value}" for name, value in found if value >= _IMPLAUSIBLE]
    if big:
        return big
    if any(d < 0 for d in dims):
        return [f"{name}: {value}" for name, value in found if value < 0]
    return [f"{name}: 0" for name, value in found if value == 0] if 0 in dims else []


_INTEGER_TYPES = {FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_INT64,
                  FieldDescriptor.CPPTYPE_UINT32, FieldDescriptor.CPPTYPE_UINT64}
