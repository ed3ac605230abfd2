"""Shared by Convolution, Deconvolution and Im2col: convolution_param geometry and the conv base."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch

from recaffe.blob import Blob
from recaffe.layer import Blobs, Layer
from recaffe.math import layout
from recaffe.math.convolution import convolution, convolution_backward
from recaffe.math.im2col import Geometry
from recaffe.proto import caffe_pb2


def _per_axis(layer: Layer, name: str, values: Sequence[int], nd: int, default: int | None) -> list[int]:
    """A repeated field given once (broadcast) or once per spatial axis; empty gives ``default``."""
    if not values and default is not None:
        return [default] * nd
    if len(values) not in (1, nd):
        raise layer.error(f"convolution_param.{name} must be specified once, or once per spatial "
                          f"dimension ({name} specified {len(values)} times; {nd} spatial dims)")
    return [values[0] if len(values) == 1 else values[i] for i in range(nd)]


def _field(
    layer: Layer, p: caffe_pb2.ConvolutionParameter, name: str, nd: int, default: int | None
) -> list[int]:
    """``name`` from the repeated form, or from the 2-D-only ``name_h``/``name_w`` pair."""
    short = "kernel" if name == "kernel_size" else name
    if p.HasField(f"{short}_h") or p.HasField(f"{short}_w"):  # type: ignore[arg-type]
        if nd != 2:
            raise layer.error(f"{short}_h & {short}_w can only be used for 2D convolution, "
                              f"got {nd} spatial dims")
        if len(getattr(p, name)):
            raise layer.error(f"either {name} or {short}_h/w should be specified; not both")
        return [getattr(p, f"{short}_h"), getattr(p, f"{short}_w")]
    return _per_axis(layer, name, getattr(p, name), nd, default)


def parse_geometry(layer: Layer, p: caffe_pb2.ConvolutionParameter, nd: int) -> Geometry:
    """Kernel, stride, pad and dilation for ``nd`` spatial axes, with Caffe's CHECKs."""
    kernel = _field(layer, p, "kernel_size", nd, None if nd else 1)
    stride = _field(layer, p, "stride", nd, 1)
    for what, values in (("kernel", kernel), ("stride", stride)):
        if any(v <= 0 for v in values):
            raise layer.error(f"{what} dimensions must be nonzero, got {values}")
    pad = _field(layer, p, "pad", nd, 0)
    dilation = _per_axis(layer, "dilation", p.dilation, nd, 1)
    return Geometry(tuple(kernel), tuple(stride), tuple(pad), tuple(dilation))


class BaseConvolutionLayer(Layer):
    """Convolution and Deconvolution: parameters, weights, shapes and the (transposed) conv.

    A subclass sets ``transposed`` and implements ``output_spatial``. Every bottom (all of one
    shape) is convolved with the shared weights into its own top.
    """

    transposed: ClassVar[bool] = False
    min_bottom_blobs = 1
    min_top_blobs = 1
    equal_num_bottom_top_blobs = True

    def output_spatial(self, spatial: Sequence[int]) -> tuple[int, ...]:
        raise NotImplementedError

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.convolution_param
        self.axis = bottom[0].canonical_axis(p.axis)
        self.geometry = parse_geometry(self, p, bottom[0].num_axes - self.axis - 1)
        self.channels = bottom[0].shape[self.axis]
        if p.num_output <= 0:
            raise self.error(f"convolution_param.num_output must be > 0, got {p.num_output}")
        if p.group <= 0:
            raise self.error(f"convolution_param.group must be > 0, got {p.group}")
        if self.channels % p.group or p.num_output % p.group:
            raise self.error(f"input channels ({self.channels}) and num_output ({p.num_output}) "
                             f"must both be multiples of group ({p.group})")
        # Deconvolution is the transpose of a convolution from its top to its bottom.
        channels = (self.channels, p.num_output)
        conv_out, conv_in = channels if self.transposed else channels[::-1]
        weight_shape = (conv_out, conv_in // p.group, *self.geometry.kernel)
        bias_shape = (p.num_output,)
        if not self.blobs:
            self.blobs = [self.new_blob(weight_shape, p.weight_filler)]
            if p.bias_term:
                self.blobs.append(self.new_blob(bias_shape, p.bias_filler))
        if len(self.blobs) != 1 + p.bias_term:
            raise self.error(f"incorrect number of weight blobs: expected {1 + p.bias_term}, "
                             f"got {len(self.blobs)}")
        for blob, shape, what in zip(self.blobs, (weight_shape, bias_shape), ("weight", "bias")):
            if blob.shape != shape:
                raise self.error(f"incorrect {what} shape: expected {shape}, got {blob.shape}")
        self.param_propagate_down = [True] * len(self.blobs)

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        shape = bottom[0].shape
        if len(shape) != self.axis + 1 + len(self.geometry.kernel):
            raise self.error(f"bottom num_axes may not change: got shape {shape}")
        if shape[self.axis] != self.channels:
            raise self.error(f"input has {shape[self.axis]} channels, the weights expect {self.channels}")
        for i, blob in enumerate(bottom[1:], 1):
            if blob.shape != shape:
                raise self.error(f"shape mismatch - bottom[0]: {shape} vs. bottom[{i}]: {blob.shape}")
        out = self.output_spatial(shape[self.axis + 1:])
        if any(o < 1 for o in out):
            raise self.error(f"output size {out} from input {shape} is empty or negative "
                             f"(kernel {self.geometry.kernel}, pad {self.geometry.pad})")
        self.num = math.prod(shape[: self.axis])
        for blob in top:
            blob.reshape((*shape[: self.axis], self.param.convolution_param.num_output, *out))

    def _operand(self, blob: Blob, diff: bool = False) -> torch.Tensor:
        """A bottom's (or top's) data or diff as (num, C, *spatial), in the layout it is held in."""
        if self.axis == 1:
            return blob.strided_diff() if diff else blob.strided_data()
        return (blob.diff if diff else blob.data).view(self.num, *blob.shape[self.axis:])

    def _assign(self, blob: Blob, value: torch.Tensor, diff: bool = False) -> None:
        """Hand ``value`` (num, C, *spatial) over as the blob's data or diff."""
        if self.axis == 1:
            layout.store(blob, value, diff)
        else:
            (blob.diff if diff else blob.data).copy_(value.view(blob.shape))

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        bias = self.blobs[1].data if len(self.blobs) > 1 else None
        for b, t in zip(bottom, top):
            y = convolution(self._operand(b), self.blobs[0].data, bias, self.geometry,
                            self.param.convolution_param.group, self.transposed)
            self._assign(t, y)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        has_bias = len(self.blobs) > 1
        for i, (t, b) in enumerate(zip(top, bottom)):
            mask = (propagate_down[i], self.param_propagate_down[0],
                    has_bias and self.param_propagate_down[1])
            if not any(mask):
                continue
            dx, dw, db = convolution_backward(
                self._operand(t, diff=True), self._operand(b), self.blobs[0].data,
                self.geometry, self.param.convolution_param.group, self.transposed, mask)
            if dx is not None:
                self._assign(b, dx, diff=True)
            if dw is not None:
                self.blobs[0].diff.add_(dw)
            if db is not None:
                self.blobs[1].diff.add_(db)
