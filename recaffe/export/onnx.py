"""A Net as an ONNX graph (opset 18, dynamic batch axis) that computes what Caffe computes.

Every layer becomes standard ONNX operators chosen to keep Caffe's numbers: pooling gets explicit
per-side pads (Caffe's ceil rounding and clipped last window) and, for AVE, a correction of the
divisor where Caffe's window overhangs the padded image; LRN WITHIN_CHANNEL is built from
AveragePool/Pow; BatchNorm's statistics are divided by its scale-factor blob at export. A layer
with no exact ONNX form raises ExportError naming the layer and the reason.

Needs the ``onnx`` package (``pip install recaffe[export]``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from recaffe.export import runtime
from recaffe.export.graph import ExportError, Graph, Node, walk
from recaffe.io import atomic
from recaffe.net import Net
from recaffe.proto import caffe_pb2

OPSET = 18
Constant = np.ndarray | np.generic | torch.Tensor | list[int] | float
BATCH = "N"


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as e:
        raise ExportError("ONNX export needs the onnx package: pip install 'recaffe[export]'") from e
    return onnx


class Builder:
    """Writes nodes and initializers straight into a ModelProto's graph (no copies of the
    weights beyond the one into the proto); names intermediate values after their layer."""

    def __init__(self) -> None:
        self.onnx = _onnx()
        self.model = self.onnx.ModelProto()
        self.graph = self.model.graph
        self.count = 0

    def fresh(self, node: Node, what: str) -> str:
        self.count += 1
        return f"{node.name}/{what}_{self.count}"

    def const(self, node: Node, what: str, value: Constant) -> str:
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        array = np.ascontiguousarray(array, np.float32 if array.dtype.kind == "f" else np.int64)
        name = self.fresh(node, what)
        tensor = self.graph.initializer.add()
        tensor.name, tensor.data_type = name, self.onnx.helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor.dims.extend(array.shape)
        tensor.raw_data = array.tobytes()
        return name

    def op(self, node: Node, op_type: str, inputs: list[str], output: str | None = None,
           **attrs: Any) -> str:
        out = output or self.fresh(node, op_type.lower())
        self.node(op_type, inputs, [out], name=self.fresh(node, op_type), **attrs)
        return out

    def node(self, op_type: str, inputs: list[str], outputs: list[str], **attrs: Any) -> None:
        self.graph.node.append(self.onnx.helper.make_node(op_type, inputs, outputs, **attrs))

    def affine(self, node: Node, x: str, scale: float, shift: float, out: str | None = None) -> str:
        """x·scale + shift, skipping the identity steps (Caffe's Power/Log/Exp inner form)."""
        if scale != 1:
            x = self.op(node, "Mul", [x, self.const(node, "scale", np.float32(scale))])
        if shift != 0:
            x = self.op(node, "Add", [x, self.const(node, "shift", np.float32(shift))])
        return self.op(node, "Identity", [x], out) if out is not None else x


Emit = Callable[[Builder, Node], None]


def _conv(b: Builder, node: Node) -> None:
    p = node.layer.param.convolution_param
    g = node.layer.geometry  # type: ignore[attr-defined]
    if node.axis(p.axis) != 1:
        raise node.error(f"convolution over axis {p.axis}: ONNX convolves from axis 1 only")
    inputs = [node.bottoms[0]] + [b.const(node, "blob", blob.data) for blob in node.layer.blobs]
    b.op(node, "ConvTranspose" if node.type == "Deconvolution" else "Conv", inputs, node.tops[0],
         kernel_shape=list(g.kernel), strides=list(g.stride), pads=list(g.pad) * 2,
         dilations=list(g.dilation), group=p.group)


def _pool(b: Builder, node: Node) -> None:
    node.check_pooling()
    p, layer = node.layer.param.pooling_param, node.layer
    window = layer.window  # type: ignore[attr-defined]
    _pool_window(b, node, node.bottoms[0], window.kernel, window.stride, window.pad,
                 p.pool == caffe_pb2.PoolingParameter.MAX, window.ceil_mode, node.tops[0])


def _pool_window(b: Builder, node: Node, x: str, kernel: tuple[int, int], stride: tuple[int, int],
                 pad: tuple[int, int], is_max: bool, ceil: bool, out: str | None) -> str:
    """Caffe's pooling of the (N, C, H, W) value x with one window geometry."""
    in_hw = (node.bottom_shapes[0][2], node.bottom_shapes[0][3])
    _, pads, divisors = runtime.pool_geometry(in_hw, kernel, stride, pad, ceil)
    (left, right, top, bottom) = pads
    if min(pads) < 0:  # the windows stop short of the input's end: cut it
        ends = [in_hw[0] + min(bottom, 0), in_hw[1] + min(right, 0)]
        x = b.op(node, "Slice", [x, b.const(node, "starts", [0, 0]), b.const(node, "ends", ends),
                                 b.const(node, "axes", [2, 3])])
    attrs: dict[str, Any] = {"kernel_shape": list(kernel), "strides": list(stride),
                             "pads": [max(top, 0), max(left, 0), max(bottom, 0), max(right, 0)]}
    if is_max:
        return b.op(node, "MaxPool", [x], out, **attrs)
    size = kernel[0] * kernel[1]
    divisor = np.outer(divisors[0], divisors[1]).astype(np.float32)
    if (divisor == size).all():
        return b.op(node, "AveragePool", [x], out, count_include_pad=1, **attrs)
    mean = b.op(node, "AveragePool", [x], count_include_pad=1, **attrs)
    return b.op(node, "Mul", [mean, b.const(node, "divisor", np.float32(size) / divisor)], out)


def _spp(b: Builder, node: Node) -> None:
    p = node.layer.param.spp_param
    if p.pool == caffe_pb2.SPPParameter.STOCHASTIC:
        raise node.error("STOCHASTIC pooling draws from Caffe's random stream; ONNX has no such operator")
    hw = node.bottom_shapes[0][2:4]
    levels = []
    for level in range(p.pyramid_height):
        kernel, pad = runtime.spp_level(hw[0], hw[1], level)
        single = p.pyramid_height == 1
        y = _pool_window(b, node, node.bottoms[0], kernel, kernel, pad, p.pool == caffe_pb2.SPPParameter.MAX,
                         True, node.tops[0] if single else None)
        levels.append(y if single else b.op(node, "Flatten", [y], axis=1))
    if len(levels) > 1:
        b.op(node, "Concat", levels, node.tops[0], axis=1)


def _lrn(b: Builder, node: Node) -> None:
    p = node.layer.param.lrn_param
    if p.norm_region == caffe_pb2.LRNParameter.ACROSS_CHANNELS:
        # ONNX's LRN: x / (bias + alpha/size · Σ x²)^beta over the same centred window as Caffe's
        b.op(node, "LRN", [node.bottoms[0]], node.tops[0], size=p.local_size, alpha=p.alpha, beta=p.beta,
             bias=p.k)
        return
    x = node.bottoms[0]
    pre = (p.local_size - 1) // 2
    square = b.op(node, "Mul", [x, x])
    mean = b.op(node, "AveragePool", [square], kernel_shape=[p.local_size] * 2, strides=[1, 1],
                pads=[pre] * 4, count_include_pad=1)
    scale = b.affine(node, mean, p.alpha, 1.0)
    power = b.op(node, "Pow", [scale, b.const(node, "power", np.float32(-p.beta))])
    b.op(node, "Mul", [x, power], node.tops[0])


def _inner_product(b: Builder, node: Node) -> None:
    p = node.layer.param.inner_product_param
    axis = node.axis(p.axis)
    flat = b.op(node, "Flatten", [node.bottoms[0]], axis=axis)
    inputs = [flat] + [b.const(node, "blob", blob.data) for blob in node.layer.blobs]
    if axis == 1:
        b.op(node, "Gemm", inputs, node.tops[0], transB=int(not p.transpose))
        return
    y = b.op(node, "Gemm", inputs, transB=int(not p.transpose))
    _reshape_to(b, node, y, node.tops[0], node.top_shapes[0], keep_batch=axis > 0)


def _reshape_to(b: Builder, node: Node, x: str, out: str, shape: tuple[int, ...], keep_batch: bool) -> None:
    """Reshape to ``shape``, with the batch axis left dynamic when it is kept."""
    target = [-1 if keep_batch and i == 0 else d for i, d in enumerate(shape)]
    b.op(node, "Reshape", [x, b.const(node, "shape", target)], out)


def _keeps_batch(node: Node) -> bool:
    """Whether the top's axis 0 is the bottom's (so it may stay dynamic)."""
    bottom, top = node.bottom_shapes[0], node.top_shapes[0]
    rest_b, rest_t = math.prod(bottom[1:]), math.prod(top[1:])
    return bool(top) and bool(bottom) and top[0] == bottom[0] and rest_b == rest_t


def _reshape(b: Builder, node: Node) -> None:
    _reshape_to(b, node, node.bottoms[0], node.tops[0], node.top_shapes[0], _keeps_batch(node))


def _channel_view(node: Node, t: torch.Tensor, axis: int) -> torch.Tensor:
    """A blob shaped to broadcast over the bottom's axes from ``axis``."""
    trailing = len(node.bottom_shapes[0]) - axis - t.dim()
    return t.reshape(*t.shape, *([1] * trailing))


def _batch_norm(b: Builder, node: Node) -> None:
    layer = node.layer
    if not layer.use_global_stats:  # type: ignore[attr-defined]
        raise node.error("BatchNorm in training mode normalises by the batch's own statistics and "
                         "updates its blobs; export the TEST-phase (deploy) net")
    blobs = [blob.data for blob in layer.blobs]
    s = float(blobs[2][0])
    factor = 0.0 if s == 0 else 1 / s
    mean, var = blobs[0] * factor, blobs[1] * factor
    std = (var + layer.param.batch_norm_param.eps).sqrt()
    axis = 1 if len(node.bottom_shapes[0]) > 1 else 0
    centred = b.op(node, "Sub", [node.bottoms[0], b.const(node, "mean", _channel_view(node, mean, axis))])
    b.op(node, "Div", [centred, b.const(node, "std", _channel_view(node, std, axis))], node.tops[0])


def _scale_or_bias(b: Builder, node: Node) -> None:
    p = node.layer.param.scale_param if node.type == "Scale" else node.layer.param.bias_param
    axis = node.axis(p.axis)
    blobs = list(node.layer.blobs)
    x = node.bottoms[0]
    if len(node.bottoms) > 1:
        shape = node.bottom_shapes[1]
        trailing = len(node.bottom_shapes[0]) - axis - len(shape)
        operand = b.op(node, "Reshape", [node.bottoms[1], b.const(node, "shape", [*shape, *[1] * trailing])])
    else:
        operand = b.const(node, "blob", _channel_view(node, blobs.pop(0).data, axis))
    is_scale = node.type == "Scale"
    has_bias = is_scale and node.layer.param.scale_param.bias_term
    y = b.op(node, "Mul" if is_scale else "Add", [x, operand], None if has_bias else node.tops[0])
    if has_bias:
        bias = b.const(node, "bias", _channel_view(node, blobs[-1].data, axis))
        b.op(node, "Add", [y, bias], node.tops[0])


def _relu(b: Builder, node: Node) -> None:
    slope = node.layer.param.relu_param.negative_slope
    if slope:
        b.op(node, "LeakyRelu", [node.bottoms[0]], node.tops[0], alpha=slope)
    else:
        b.op(node, "Relu", [node.bottoms[0]], node.tops[0])


def _prelu(b: Builder, node: Node) -> None:
    slope = node.layer.blobs[0].data.reshape(-1)
    if slope.numel() > 1:
        slope = _channel_view(node, slope, 1)
    b.op(node, "PRelu", [node.bottoms[0], b.const(node, "slope", slope)], node.tops[0])


def _unary(op_type: str) -> Emit:
    def emit(b: Builder, node: Node) -> None:
        b.op(node, op_type, [node.bottoms[0]], node.tops[0])
    return emit


def _elu(b: Builder, node: Node) -> None:
    b.op(node, "Elu", [node.bottoms[0]], node.tops[0], alpha=node.layer.param.elu_param.alpha)


def _bnll(b: Builder, node: Node) -> None:
    x = node.bottoms[0]
    soft = b.op(node, "Exp", [b.op(node, "Neg", [b.op(node, "Abs", [x])])])
    soft = b.op(node, "Log", [b.op(node, "Add", [soft, b.const(node, "one", np.float32(1))])])
    b.op(node, "Add", [b.op(node, "Relu", [x]), soft], node.tops[0])


def _threshold(b: Builder, node: Node) -> None:
    t = b.const(node, "threshold", np.float32(node.layer.param.threshold_param.threshold))
    b.op(node, "Cast", [b.op(node, "Greater", [node.bottoms[0], t])], node.tops[0], to=1)


def _clip(b: Builder, node: Node) -> None:
    p = node.layer.param.clip_param
    b.op(node, "Clip", [node.bottoms[0], b.const(node, "min", np.float32(p.min)),
                        b.const(node, "max", np.float32(p.max))], node.tops[0])


def _swish(b: Builder, node: Node) -> None:
    x = node.bottoms[0]
    gate = b.op(node, "Sigmoid", [b.affine(node, x, node.layer.param.swish_param.beta, 0.0)])
    b.op(node, "Mul", [x, gate], node.tops[0])


def _power(b: Builder, node: Node) -> None:
    p = node.layer.param.power_param
    x = node.bottoms[0]
    if p.power == 0:
        shape = b.op(node, "Shape", [x])
        b.op(node, "ConstantOfShape", [shape], node.tops[0],
             value=b.onnx.numpy_helper.from_array(np.ones(1, np.float32)))
        return
    if p.power == 1:
        b.affine(node, x, p.scale, p.shift, node.tops[0])
        return
    base = b.affine(node, x, p.scale, p.shift)
    b.op(node, "Pow", [base, b.const(node, "power", np.float32(p.power))], node.tops[0])


def _exp(b: Builder, node: Node) -> None:
    layer = node.layer
    y = b.op(node, "Exp", [b.affine(node, node.bottoms[0], layer.inner_scale, 0.0)])  # type: ignore[attr-defined]
    b.affine(node, y, layer.outer_scale, 0.0, node.tops[0])  # type: ignore[attr-defined]


def _log(b: Builder, node: Node) -> None:
    layer = node.layer
    y = b.op(node, "Log", [b.affine(node, node.bottoms[0], layer.scale, layer.shift)])  # type: ignore[attr-defined]
    b.affine(node, y, layer.base_scale, 0.0, node.tops[0])  # type: ignore[attr-defined]


def _softmax(b: Builder, node: Node) -> None:
    axis = node.axis(node.layer.param.softmax_param.axis)
    b.op(node, "Softmax", [node.bottoms[0]], node.tops[0], axis=axis)


def _concat(b: Builder, node: Node) -> None:
    b.op(node, "Concat", node.bottoms, node.tops[0], axis=node.layer.axis)  # type: ignore[attr-defined]


def _slice(b: Builder, node: Node) -> None:
    sizes = b.const(node, "split", list(node.layer.sizes))  # type: ignore[attr-defined]
    b.node("Split", [node.bottoms[0], sizes], node.tops, name=b.fresh(node, "Split"),
           axis=node.layer.axis)  # type: ignore[attr-defined]


def _eltwise(b: Builder, node: Node) -> None:
    op = node.layer.param.eltwise_param.operation
    E = caffe_pb2.EltwiseParameter
    if op != E.SUM:
        b.op(node, "Mul" if op == E.PROD else "Max", node.bottoms, node.tops[0])
        return
    terms = [b.affine(node, x, c, 0.0) for x, c in zip(node.bottoms, node.layer.coeffs)]  # type: ignore[attr-defined]
    y = terms[0]
    for i, t in enumerate(terms[1:], 2):
        y = b.op(node, "Add", [y, t], node.tops[0] if i == len(terms) else None)


def _crop(b: Builder, node: Node) -> None:
    axis, offsets = node.crop_offsets()
    axes = list(range(axis, len(node.bottom_shapes[0])))
    ends = [o + node.bottom_shapes[1][a] for o, a in zip(offsets, axes)]
    b.op(node, "Slice", [node.bottoms[0], b.const(node, "starts", offsets), b.const(node, "ends", ends),
                         b.const(node, "axes", axes)], node.tops[0])


def _reduction(b: Builder, node: Node) -> None:
    p = node.layer.param.reduction_param
    R = caffe_pb2.ReductionParameter
    axis = node.axis(p.axis)
    axes = b.const(node, "axes", list(range(axis, len(node.bottom_shapes[0]))))
    ops = {R.SUM: "ReduceSum", R.ASUM: "ReduceL1", R.SUMSQ: "ReduceSumSquare", R.MEAN: "ReduceMean"}
    op = ops[p.operation]
    y = b.op(node, op, [node.bottoms[0], axes], keepdims=0)
    b.affine(node, y, p.coeff, 0.0, node.tops[0])


def _argmax(b: Builder, node: Node) -> None:
    p = node.layer.param.argmax_param
    if p.top_k != 1:
        raise node.error(f"top_k {p.top_k}: ONNX's TopK ranks ties lowest index first, Caffe highest first; "
                         f"only top_k 1 (ArgMax with select_last_index) is exact")
    axis = node.layer.axis  # type: ignore[attr-defined]
    x = node.bottoms[0] if axis is not None else b.op(node, "Flatten", [node.bottoms[0]], axis=1)
    along = 1 if axis is None else axis
    if axis is not None and p.out_max_val:
        b.op(node, "ReduceMax", [x, b.const(node, "axes", [along])], node.tops[0], keepdims=1)
        return
    index = b.op(node, "Cast", [b.op(node, "ArgMax", [x], axis=along, keepdims=1, select_last_index=1)], to=1)
    if axis is not None:
        b.op(node, "Identity", [index], node.tops[0])
        return
    parts = [index]
    if p.out_max_val:
        parts.append(b.op(node, "ReduceMax", [x, b.const(node, "axes", [1])], keepdims=1))
    y = b.op(node, "Concat", parts, axis=1) if len(parts) > 1 else parts[0]
    axes = list(range(2, len(node.top_shapes[0])))  # (N, 1 or 2) -> (N, 1 or 2, 1, ...)
    b.op(node, "Unsqueeze", [y, b.const(node, "axes", axes)], node.tops[0])


def _mvn(b: Builder, node: Node) -> None:
    p = node.layer.param.mvn_param
    x, shape = node.bottoms[0], node.top_shapes[0]
    if len(node.bottom_shapes[0]) != 4:
        x = b.op(node, "Reshape", [x, b.const(node, "shape", [-1, *shape[1:]])])
    axes = b.const(node, "axes", [1, 2, 3] if p.across_channels else [2, 3])
    y = b.op(node, "Sub", [x, b.op(node, "ReduceMean", [x, axes], keepdims=1)],
             None if p.normalize_variance else node.tops[0])
    if p.normalize_variance:
        std = b.op(node, "Sqrt", [b.op(node, "ReduceMean", [b.op(node, "Mul", [y, y]), axes], keepdims=1)])
        b.op(node, "Div", [y, b.affine(node, std, 1.0, p.eps)], node.tops[0])


def _tile(b: Builder, node: Node) -> None:
    p = node.layer.param.tile_param
    axis = node.axis(p.axis)
    repeats = [p.tiles if i == axis else 1 for i in range(len(node.bottom_shapes[0]))]
    b.op(node, "Tile", [node.bottoms[0], b.const(node, "repeats", repeats)], node.tops[0])


def _embed(b: Builder, node: Node) -> None:
    index = b.op(node, "Cast", [node.bottoms[0]], to=7)  # int64, truncating as Caffe's static_cast
    blobs = node.layer.blobs
    weight = b.const(node, "weight", blobs[0].data)
    y = b.op(node, "Gather", [weight, index], None if len(blobs) > 1 else node.tops[0], axis=0)
    if len(blobs) > 1:
        b.op(node, "Add", [y, b.const(node, "bias", blobs[1].data)], node.tops[0])


def _parameter(b: Builder, node: Node) -> None:
    b.op(node, "Identity", [b.const(node, "blob", node.layer.blobs[0].data)], node.tops[0])


def _batch_reindex(b: Builder, node: Node) -> None:
    index = b.op(node, "Cast", [node.bottoms[1]], to=7)  # int64, truncating
    b.op(node, "Gather", [node.bottoms[0], index], node.tops[0], axis=0)


def _im2col(b: Builder, node: Node) -> None:
    """A grouped convolution with one-hot kernels: output channel (c·kh + i)·kw + j copies input
    channel c at window offset (i, j), exactly (every other product is x·0)."""
    g = node.layer.geometry  # type: ignore[attr-defined]
    if node.axis(node.layer.param.convolution_param.axis) != 1:
        raise node.error("im2col over an axis other than 1 has no ONNX convolution form")
    channels, window = node.bottom_shapes[0][1], math.prod(g.kernel)
    ones = np.eye(window, dtype=np.float32).reshape(window, 1, *g.kernel)
    weight = np.tile(ones, (channels, 1, *[1] * len(g.kernel)))
    b.op(node, "Conv", [node.bottoms[0], b.const(node, "onehot", weight)], node.tops[0],
         kernel_shape=list(g.kernel), strides=list(g.stride), pads=list(g.pad) * 2,
         dilations=list(g.dilation), group=channels)


def _identity(b: Builder, node: Node) -> None:
    b.op(node, "Identity", [node.bottoms[0]], node.tops[0])


EMITTERS: dict[str, Emit] = {
    "Convolution": _conv,
    "Deconvolution": _conv,
    "Pooling": _pool,
    "LRN": _lrn,
    "InnerProduct": _inner_product,
    "BatchNorm": _batch_norm,
    "Scale": _scale_or_bias,
    "Bias": _scale_or_bias,
    "ReLU": _relu,
    "PReLU": _prelu,
    "ELU": _elu,
    "Sigmoid": _unary("Sigmoid"),
    "TanH": _unary("Tanh"),
    "AbsVal": _unary("Abs"),
    "BNLL": _bnll,
    "Threshold": _threshold,
    "Clip": _clip,
    "Swish": _swish,
    "Power": _power,
    "Exp": _exp,
    "Log": _log,
    "Dropout": _identity,
    "Softmax": _softmax,
    "Concat": _concat,
    "Slice": _slice,
    "Eltwise": _eltwise,
    "Crop": _crop,
    "Flatten": _reshape,
    "Reshape": _reshape,
    "Reduction": _reduction,
    "ArgMax": _argmax,
    "Silence": lambda b, node: None,
    "MVN": _mvn,
    "Tile": _tile,
    "Embed": _embed,
    "Parameter": _parameter,
    "BatchReindex": _batch_reindex,
    "Im2col": _im2col,
    "SPP": _spp,
}

WHY_NOT = {
    "loss": "a loss layer is training-only; export the deploy (TEST) net without it",
    "Accuracy": "Accuracy compares with labels during testing; export the deploy net without it",
}


def _dynamic(shape: tuple[int, ...], batch: int | None) -> list[int | str]:
    return [BATCH, *shape[1:]] if shape and shape[0] == batch else list(shape)


def build(net: Net, check: bool = True) -> Any:
    """The ONNX ModelProto of ``net`` (weights as initializers, batch axis named 'N'), validated
    by onnx.checker unless ``check`` is false."""
    onnx = _onnx()
    graph: Graph = walk(net)
    b = Builder()
    for node in graph.nodes:
        emit = EMITTERS.get(node.type)
        if emit is None:
            why = WHY_NOT["loss"] if "Loss" in node.type else WHY_NOT.get(node.type) or (
                f"no exact ONNX form is implemented for type {node.type} "
                f"(exported: {', '.join(sorted(EMITTERS))})")
            raise node.error(why)
        emit(b, node)
    float_t = onnx.TensorProto.FLOAT
    inputs = [onnx.helper.make_tensor_value_info(name, float_t, _dynamic(shape, shape[0] if shape else None))
              for name, shape in graph.inputs]
    batch = graph.inputs[0][1][0] if graph.inputs and graph.inputs[0][1] else None
    outputs = [onnx.helper.make_tensor_value_info(value, float_t, _dynamic(net.blobs[blob].shape, batch))
               for blob, value in graph.outputs]
    model = b.model
    model.graph.name = graph.name or "net"
    model.graph.input.extend(inputs)
    model.graph.output.extend(outputs)
    model.opset_import.append(onnx.helper.make_opsetid("", OPSET))
    model.producer_name = "recaffe"
    model.ir_version = min(onnx.IR_VERSION, 10)
    if check:
        onnx.checker.check_model(model)
    return model


def to_onnx(net: Net, path: str | os.PathLike[str]) -> None:
    """Writes ``net`` as an ONNX model file."""
    model = build(net)
    atomic.write_with(path, "ONNX model", lambda temp: _onnx().save(model, temp))
