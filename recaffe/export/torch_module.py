"""A Net as a plain PyTorch module: readable source (one attribute per layer, forward in prototxt
order) built on ``recaffe/export/runtime.py``, which the source carries along, so the result runs
with torch alone.

``source(net)`` gives the text of a self-contained .py file; ``to_torch(net)`` executes it and
loads the net's blobs; ``write_torch(net, "OUT.py")`` writes OUT.py and OUT.pt (the state_dict).
The module's ``forward`` takes the net's inputs (the tops of its data layers) by name and returns
a dict of the net's output blobs; ``module.caffe_params`` gives each parameter's Caffe
(lr_mult, decay_mult) and ``module.loss_weights`` the loss tops' weights.
"""

from __future__ import annotations

import os
import pathlib
import types
from collections.abc import Callable

import torch

from recaffe.export import runtime
from recaffe.export.graph import Node, identifiers, walk
from recaffe.io import atomic
from recaffe.net import TRAIN, Net
from recaffe.proto import caffe_pb2

RUNTIME_PATH = pathlib.Path(runtime.__file__)
# names a layer attribute must not take: nn.Module's own and the exported class's
RESERVED = frozenset(dir(torch.nn.Module)) | {"inputs", "loss_weights", "caffe_params", "caffe_loss"}

# type -> (constructor source, Caffe blob names) for a node
Emitter = Callable[[Node], tuple[str, tuple[str, ...]]]


def _conv(node: Node) -> tuple[str, tuple[str, ...]]:
    p = node.layer.param.convolution_param
    g = node.layer.geometry  # type: ignore[attr-defined]
    if not 1 <= len(g.kernel) <= 3 or node.axis(p.axis) != 1:
        raise node.error(f"PyTorch convolves 1 to 3 spatial axes after axis 1 (got {len(g.kernel)} spatial "
                         f"axes from axis {p.axis})")
    weight = node.layer.blobs[0].shape
    transposed = node.type == "Deconvolution"
    channels = (weight[0], weight[1] * p.group) if transposed else (weight[1] * p.group, weight[0])
    cls = f"nn.ConvTranspose{len(g.kernel)}d" if transposed else f"nn.Conv{len(g.kernel)}d"
    return (f"{cls}({channels[0]}, {channels[1]}, {g.kernel}, stride={g.stride}, padding={g.pad}, "
            f"dilation={g.dilation}, groups={p.group}, bias={p.bias_term})", ("weight", "bias"))


def _im2col(node: Node) -> tuple[str, tuple[str, ...]]:
    g = node.layer.geometry  # type: ignore[attr-defined]
    if len(g.kernel) != 2 or len(node.bottom_shapes[0]) != 4:
        raise node.error("PyTorch's unfold takes 2-D windows of (N, C, H, W) only")
    return f"Im2col({g.kernel}, {g.stride}, {g.pad}, {g.dilation})", ()


def _pool(node: Node) -> tuple[str, tuple[str, ...]]:
    node.check_pooling()
    p = node.layer.param.pooling_param
    layer = node.layer
    kernel = None if p.global_pooling else layer.kernel  # type: ignore[attr-defined]
    pool = caffe_pb2.PoolingParameter.PoolMethod.Name(p.pool)
    ceil = p.round_mode == caffe_pb2.PoolingParameter.CEIL
    return f"Pool({pool!r}, {kernel}, {layer.stride}, {layer.pad}, ceil_mode={ceil})", ()  # type: ignore[attr-defined]


def _spp(node: Node) -> tuple[str, tuple[str, ...]]:
    p = node.layer.param.spp_param
    if p.pool == caffe_pb2.SPPParameter.STOCHASTIC:
        raise node.error("STOCHASTIC pooling draws from Caffe's random stream; no exact PyTorch form")
    return f"SPP({p.pyramid_height}, {caffe_pb2.SPPParameter.PoolMethod.Name(p.pool)!r})", ()


def _lrn(node: Node) -> tuple[str, tuple[str, ...]]:
    p = node.layer.param.lrn_param
    across = p.norm_region == caffe_pb2.LRNParameter.ACROSS_CHANNELS
    return f"LRN({p.local_size}, {p.alpha!r}, {p.beta!r}, {p.k!r}, across={across})", ()


def _inner_product(node: Node) -> tuple[str, tuple[str, ...]]:
    p = node.layer.param.inner_product_param
    return (f"InnerProduct({node.layer.blobs[0].shape}, bias={p.bias_term}, "
            f"axis={node.axis(p.axis)}, transpose={p.transpose})", ("weight", "bias"))


def _batch_norm(node: Node) -> tuple[str, tuple[str, ...]]:
    p = node.layer.param.batch_norm_param
    stats = p.use_global_stats if p.HasField("use_global_stats") else None
    return (f"BatchNorm({node.layer.blobs[0].count()}, eps={p.eps!r}, moving_average_fraction="
            f"{p.moving_average_fraction!r}, use_global_stats={stats})", runtime.BatchNorm.caffe_blobs)


def _scale(node: Node) -> tuple[str, tuple[str, ...]]:
    p = node.layer.param.scale_param
    blobs = [b.shape for b in node.layer.blobs]
    learned = len(node.bottoms) == 1
    shape = blobs[0] if learned else None
    bias = blobs[-1] if p.bias_term else None
    names = (("weight",) if learned else ()) + (("bias",) if p.bias_term else ())
    return f"Scale({shape}, axis={node.axis(p.axis)}, bias_shape={bias})", names


def _bias(node: Node) -> tuple[str, tuple[str, ...]]:
    shape = node.layer.blobs[0].shape if len(node.bottoms) == 1 else None
    return f"Bias({shape}, axis={node.axis(node.layer.param.bias_param.axis)})", ("bias",)


def _relu(node: Node) -> tuple[str, tuple[str, ...]]:
    slope = node.layer.param.relu_param.negative_slope
    return ("nn.ReLU()" if slope == 0 else f"nn.LeakyReLU({slope!r})"), ()


def _prelu(node: Node) -> tuple[str, tuple[str, ...]]:
    return f"nn.PReLU({node.layer.blobs[0].count()})", ("weight",)


def _eltwise(node: Node) -> tuple[str, tuple[str, ...]]:
    p = node.layer.param.eltwise_param
    op = caffe_pb2.EltwiseParameter.EltwiseOp.Name(p.operation)
    return f"Eltwise({op!r}, {tuple(node.layer.coeffs)})", ()  # type: ignore[attr-defined]


def _slice(node: Node) -> tuple[str, tuple[str, ...]]:
    layer = node.layer
    return f"Slice({layer.axis}, {tuple(layer.sizes)})", ()  # type: ignore[attr-defined]


def _crop(node: Node) -> tuple[str, tuple[str, ...]]:
    axis, offsets = node.crop_offsets()
    return f"Crop({axis}, {tuple(offsets)})", ()


def _reshape(node: Node) -> tuple[str, tuple[str, ...]]:
    p = node.layer.param.reshape_param
    return f"Reshape({tuple(p.shape.dim)}, {p.axis}, {p.num_axes})", ()


def _flatten(node: Node) -> tuple[str, tuple[str, ...]]:
    p = node.layer.param.flatten_param
    return f"Flatten({p.axis}, {p.end_axis})", ()


def _softmax_loss(node: Node) -> tuple[str, tuple[str, ...]]:
    if len(node.tops) > 1:
        raise node.error("the second (prob) top of SoftmaxWithLoss is not exported; add a Softmax layer")
    layer = node.layer
    mode = caffe_pb2.LossParameter.NormalizationMode.Name(layer.mode)  # type: ignore[attr-defined]
    return f"SoftmaxWithLoss({layer.axis}, {layer.ignore}, {mode!r})", ()  # type: ignore[attr-defined]


def _sigmoid_loss(node: Node) -> tuple[str, tuple[str, ...]]:
    layer = node.layer
    mode = caffe_pb2.LossParameter.NormalizationMode.Name(layer.mode)  # type: ignore[attr-defined]
    return f"SigmoidCrossEntropyLoss({layer.ignore}, {mode!r})", ()  # type: ignore[attr-defined]


def _hinge(node: Node) -> tuple[str, tuple[str, ...]]:
    norm = caffe_pb2.HingeLossParameter.Norm.Name(node.layer.param.hinge_loss_param.norm)
    return f"HingeLoss({norm!r})", ()


def _accuracy(node: Node) -> tuple[str, tuple[str, ...]]:
    layer = node.layer
    return (f"Accuracy({layer.axis}, {layer.top_k}, {layer.ignore}, "  # type: ignore[attr-defined]
            f"per_class={len(node.tops) > 1})", ())


def _mvn(node: Node) -> tuple[str, tuple[str, ...]]:
    p = node.layer.param.mvn_param
    return f"MVN({p.normalize_variance}, {p.across_channels}, {p.eps!r})", ()


def _embed(node: Node) -> tuple[str, tuple[str, ...]]:
    p = node.layer.param.embed_param
    return f"Embed({p.input_dim}, {p.num_output}, bias={p.bias_term})", ("weight", "bias")


def _argmax(node: Node) -> tuple[str, tuple[str, ...]]:
    p = node.layer.param.argmax_param
    if p.top_k != 1:
        raise node.error(f"top_k {p.top_k}: only top_k 1 is exported (ties must rank the higher index "
                         f"first, which ONNX's TopK does not do)")
    return f"ArgMax({node.layer.axis}, {p.out_max_val})", ()  # type: ignore[attr-defined]


def _simple(template: str, field: str = "", *attrs: str) -> Emitter:
    def emit(node: Node) -> tuple[str, tuple[str, ...]]:
        p = getattr(node.layer.param, field) if field else None
        return template.format(*(repr(getattr(p, a)) for a in attrs)), ()
    return emit


def _reduction(node: Node) -> tuple[str, tuple[str, ...]]:
    p = node.layer.param.reduction_param
    op = caffe_pb2.ReductionParameter.ReductionOp.Name(p.operation)
    return f"Reduction({op!r}, {node.axis(p.axis)}, {p.coeff!r})", ()


def _exp(node: Node) -> tuple[str, tuple[str, ...]]:
    layer = node.layer
    return f"Exp({layer.inner_scale!r}, {layer.outer_scale!r})", ()  # type: ignore[attr-defined]


def _log(node: Node) -> tuple[str, tuple[str, ...]]:
    layer = node.layer
    return f"Log({layer.scale!r}, {layer.shift!r}, {layer.base_scale!r})", ()  # type: ignore[attr-defined]


def _clip(node: Node) -> tuple[str, tuple[str, ...]]:
    p = node.layer.param.clip_param
    return f"nn.Hardtanh({p.min!r}, {p.max!r})", ()


EMITTERS: dict[str, Emitter] = {
    "Convolution": _conv,
    "Deconvolution": _conv,
    "Pooling": _pool,
    "LRN": _lrn,
    "InnerProduct": _inner_product,
    "BatchNorm": _batch_norm,
    "Scale": _scale,
    "Bias": _bias,
    "ReLU": _relu,
    "PReLU": _prelu,
    "ELU": _simple("ELU({})", "elu_param", "alpha"),
    "Sigmoid": _simple("nn.Sigmoid()"),
    "TanH": _simple("nn.Tanh()"),
    "AbsVal": _simple("AbsVal()"),
    "BNLL": _simple("BNLL()"),
    "Threshold": _simple("Threshold({})", "threshold_param", "threshold"),
    "Swish": _simple("Swish({})", "swish_param", "beta"),
    "Clip": _clip,
    "Power": _simple("Power({}, {}, {})", "power_param", "power", "scale", "shift"),
    "Exp": _exp,
    "Log": _log,
    "Dropout": _simple("nn.Dropout({})", "dropout_param", "dropout_ratio"),
    "Softmax": lambda node: (f"nn.Softmax({node.axis(node.layer.param.softmax_param.axis)})", ()),
    "Concat": lambda node: (f"Concat({node.layer.axis})", ()),  # type: ignore[attr-defined]
    "Slice": _slice,
    "Eltwise": _eltwise,
    "Crop": _crop,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Reduction": _reduction,
    "ArgMax": _argmax,
    "SoftmaxWithLoss": _softmax_loss,
    "SigmoidCrossEntropyLoss": _sigmoid_loss,
    "EuclideanLoss": _simple("EuclideanLoss()"),
    "Accuracy": _accuracy,
    "MultinomialLogisticLoss": _simple("MultinomialLogisticLoss()"),
    "HingeLoss": _hinge,
    "MVN": _mvn,
    "Tile": lambda node: (f"Tile({node.axis(node.layer.param.tile_param.axis)}, "
                          f"{node.layer.param.tile_param.tiles})", ()),
    "Embed": _embed,
    "Parameter": lambda node: (f"Parameter({node.layer.blobs[0].shape})", ("weight",)),
    "BatchReindex": _simple("BatchReindex()"),
    "Im2col": _im2col,
    "SPP": _spp,
    "Silence": _simple("nn.Identity()"),  # not called: forward skips it
}


def _emit(node: Node) -> tuple[str, tuple[str, ...]]:
    emitter = EMITTERS.get(node.type)
    if emitter is None:
        raise node.error(f"no PyTorch export for type {node.type} "
                         f"(exported types: {', '.join(sorted(EMITTERS))})")
    ctor, names = emitter(node)
    return ctor, names[: len(node.layer.blobs)]


def source(net: Net) -> str:
    """The text of a self-contained .py file defining ``class Net(nn.Module)`` for ``net``."""
    graph = walk(net)
    attrs = identifiers([n.name for n in graph.nodes], RESERVED)
    values = [name for name, _ in graph.inputs] + [t for n in graph.nodes for t in n.tops]
    variables = identifiers(values, frozenset({"self", "tops"}))
    init, body, params, blob_names = [], [], [], {}
    for node in graph.nodes:
        ctor, names = _emit(node)
        attr = attrs[node.name]
        blob_names[node.name] = names
        init.append(f"        self.{attr} = {ctor}  # {node.name!r}")
        for j, (owner, k) in node.shared.items():
            init.append(f"        self.{attr}.{names[j]} = self.{attrs[owner]}.{blob_names[owner][k]}")
        for j in range(len(node.layer.blobs)):
            if node.type != "BatchNorm" and j not in node.shared:
                spec = node.layer.param.param[j] if j < len(node.layer.param.param) else caffe_pb2.ParamSpec()
                params.append(f"        '{attr}.{names[j]}': ({spec.lr_mult!r}, {spec.decay_mult!r}),")
        if node.type == "Silence":
            continue
        args = ", ".join(variables[b] for b in node.bottoms)
        tops = ", ".join(variables[t] for t in node.tops)
        tops += "," if node.type == "Slice" and len(node.tops) == 1 else ""
        body.append(f"        {tops} = self.{attr}({args})")
    inputs = ", ".join(f"{variables[name]}: torch.Tensor" for name, _ in graph.inputs)
    shapes = ", ".join(f"{name!r}: {shape}" for name, shape in graph.inputs)
    returns = ", ".join(f"{blob!r}: {variables[value]}" for blob, value in graph.outputs)
    lines = [
        "",
        "",
        "class Net(nn.Module):",
        f'    """{graph.name or "net"}, exported by recaffe from Caffe\'s definition (inputs: {shapes})."""',
        "",
        f"    inputs = {tuple(name for name, _ in graph.inputs)!r}",
        f"    loss_weights = {graph.loss_weights!r}",
        "    caffe_params = {  # parameter: (lr_mult, decay_mult)",
        *params,
        "    }",
        "",
        "    def __init__(self) -> None:",
        "        super().__init__()",
        *init,
        "",
        f"    def forward(self, {inputs}) -> dict[str, torch.Tensor]:",
        *body,
        f"        return {{{returns}}}",
        "",
        "    def caffe_loss(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:",
        '        """Caffe\'s objective: the loss tops weighted by their loss_weight."""',
        "        return weighted_loss(outputs, self.loss_weights)",
    ]
    return RUNTIME_PATH.read_text() + "\n".join(lines) + "\n"


def _load_module(text: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(text, f"<recaffe export of {name}>", "exec"), module.__dict__)  # noqa: S102
    return module


def state_dict(net: Net) -> dict[str, torch.Tensor]:
    """The net's blobs under the exported module's names (``conv1.weight``, ``bn1.mean``, ...)."""
    graph = walk(net)
    attrs = identifiers([n.name for n in graph.nodes], RESERVED)
    state: dict[str, torch.Tensor] = {}
    for node in graph.nodes:
        _, names = _emit(node)
        for j, blob in enumerate(node.layer.blobs):
            state[f"{attrs[node.name]}.{names[j]}"] = blob.data.detach().clone().cpu()
    return state


def to_torch(net: Net) -> torch.nn.Module:
    """``net`` as a torch.nn.Module holding a copy of its blobs; train() mode if net is TRAIN."""
    module = _load_module(source(net), f"recaffe_export_{net.name or 'net'}").Net()
    own = module.state_dict()
    for key, value in state_dict(net).items():
        own[key].copy_(value.reshape(own[key].shape))
    module.train(net.phase == TRAIN)
    return module


def write_torch(net: Net, path: str | os.PathLike[str]) -> tuple[pathlib.Path, pathlib.Path]:
    """Writes ``path`` (.py source) and the weights beside it (.pt, a state_dict); returns both."""
    py = pathlib.Path(path)
    if py.suffix != ".py":
        raise ValueError(f"PyTorch export writes Python source: {py} must end in .py")
    module = to_torch(net)
    pt = py.with_suffix(".pt")
    atomic.write_bytes(py, source(net).encode("utf-8"), "PyTorch source")
    atomic.write_with(pt, "PyTorch weights", lambda temp: torch.save(module.state_dict(), temp))
    return py, pt
