"""``recaffe explain SOLVER_OR_NET``: where a PyTorch/TensorFlow reimplementation of this net and
solver would silently differ from Caffe, each with the PyTorch code that reproduces Caffe.

It reads the prototxt only (no data, no weights): the data layers' transform_param, every
filler, LRN, pooling, BatchNorm and loss layer, and the solver's update, rate and regularisation.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass

from recaffe.io import prototxt
from recaffe.proto import caffe_pb2

F = caffe_pb2.FillerParameter
P = caffe_pb2.PoolingParameter
DATA_TYPES = {"Data", "ImageData", "WindowData", "MemoryData", "HDF5Data", "Input", "DummyData"}
WEIGHTED = {"Convolution": "convolution_param", "Deconvolution": "convolution_param",
            "InnerProduct": "inner_product_param", "Embed": "embed_param"}


@dataclass
class Finding:
    topic: str
    where: str
    caffe: str  # what Caffe does here
    port: str  # what a PyTorch/TensorFlow port does by default
    code: str  # PyTorch code that reproduces Caffe


def explain(path: str | os.PathLike[str]) -> tuple[str, list[Finding]]:
    """(a header naming what was read, the findings) for a solver or a net prototxt."""
    text = pathlib.Path(path).read_text()
    solver = _as_solver(path, text)
    if solver is None:
        net = prototxt.read_net_param(path)
        return f"net {path}", _net_findings(net)
    net_path = _net_path(pathlib.Path(path), solver)
    net = prototxt.read_net_param(net_path)
    return f"solver {path}, net {net_path}", _net_findings(net) + _solver_findings(solver, net)


def render(header: str, findings: list[Finding]) -> str:
    lines = [f"recaffe explain: {header}",
             f"{len(findings)} places where a PyTorch/TensorFlow port silently differs from Caffe:", ""]
    for i, f in enumerate(findings, 1):
        lines += [f"{i}. [{f.topic}] {f.where}", f"   Caffe: {f.caffe}", f"   A port: {f.port}",
                  "   PyTorch:"]
        lines += [f"     {line}" for line in f.code.splitlines()]
        lines.append("")
    return "\n".join(lines)


def _as_solver(path: str | os.PathLike[str], text: str) -> caffe_pb2.SolverParameter | None:
    """The SolverParameter if the file is one (it names a net), else None (a net)."""
    try:
        solver = prototxt.read_solver_param(path)
    except ValueError:
        return None
    has_net = (solver.net or solver.train_net or solver.HasField("net_param")
               or solver.HasField("train_net_param"))
    return solver if has_net and "layer" not in text.split("{")[0] else None


def _net_path(solver_path: pathlib.Path, solver: caffe_pb2.SolverParameter) -> pathlib.Path:
    """Caffe resolves ``net`` from its working directory (often Caffe's root): try the current
    directory, then the solver's folder and each folder above it."""
    relative = solver.net or solver.train_net
    if not relative:
        raise ValueError(f"{solver_path}: explain needs a net file (net or train_net), "
                         f"not an inline net_param")
    for base in [pathlib.Path.cwd(), *solver_path.resolve().parents]:
        if (base / relative).is_file():
            return base / relative
    raise ValueError(f"{solver_path}: net {relative!r} is not under the current directory or any folder "
                     f"above the solver")


# ---------------------------------------------------------------- the net
def _net_findings(net: caffe_pb2.NetParameter) -> list[Finding]:
    findings: list[Finding] = []
    seen_transforms: set[str] = set()
    for layer in net.layer:
        if layer.type in DATA_TYPES and layer.HasField("transform_param"):
            key = str(layer.transform_param)
            if key not in seen_transforms:
                seen_transforms.add(key)
                findings.append(_transform(layer))
    findings += _fillers(net)
    for layer in net.layer:
        if layer.type == "LRN":
            findings.append(_lrn(layer))
        elif layer.type == "Pooling":
            findings.append(_pooling(layer))
        elif layer.type == "BatchNorm":
            findings.append(_batch_norm(layer))
        elif layer.type == "SoftmaxWithLoss":
            findings.append(_softmax_loss(layer))
    return findings


def _phase(layer: caffe_pb2.LayerParameter) -> str:
    phases = [caffe_pb2.Phase.Name(rule.phase) for rule in layer.include if rule.HasField("phase")]
    return f" ({'/'.join(phases)})" if phases else ""


def _transform(layer: caffe_pb2.LayerParameter) -> Finding:
    t = layer.transform_param
    steps, code = [], ["# x: uint8 image as Caffe stores it: C×H×W, BGR channel order, values 0..255",
                       "x = x.float()"]
    if t.mean_file:
        steps.append(f"subtract the per-pixel mean image {t.mean_file!r} (H×W×C, before cropping)")
        code.append(f"mean = torch.from_numpy(recaffe.io.binaryproto.read_mean({t.mean_file!r}))  # C×H×W")
    elif t.mean_value:
        steps.append(f"subtract mean_value {list(t.mean_value)} (per channel, BGR order)")
        code.append(f"mean = torch.tensor({list(t.mean_value)}).view(-1, 1, 1)")
    if t.crop_size:
        steps.append(f"crop {t.crop_size}×{t.crop_size} (random offset in TRAIN, centre in TEST)")
        code += [f"c = {t.crop_size}",
                 "h, w = x.shape[1] - c, x.shape[2] - c",
                 "i, j = (random.randint(0, h), random.randint(0, w)) if training else (h // 2, w // 2)"]
        if t.mean_file:
            code.append("x = (x - mean)[:, i:i + c, j:j + c]  # the mean image is cropped with the data")
        else:
            code.append("x = x[:, i:i + c, j:j + c]")
    if (t.mean_value or t.mean_file) and not (t.crop_size and t.mean_file):
        code.append("x = x - mean")
    if t.mirror:
        steps.append("mirror (flip W) with probability 1/2 in TRAIN")
        code.append("if training and random.random() < 0.5: x = x.flip(2)")
    if t.scale != 1:
        steps.append(f"multiply by scale {t.scale:g} after the mean (1/{1 / t.scale:g}, not 1/255)")
        code.append(f"x = x * {t.scale:.7g}")
    if not steps:
        steps.append("no mean, crop, mirror or scale: raw 0..255 values")
    return Finding(
        "input", f"data layer {layer.name!r}{_phase(layer)}",
        "; ".join(steps) + "; colour channels stay in BGR order, values in 0..255 before the mean",
        "torchvision's ToTensor scales to 0..1 RGB and Normalize takes per-channel mean/std; a mean image, "
        "Caffe's scale or BGR order are lost",
        "\n".join(code))


def _fillers(net: caffe_pb2.NetParameter) -> list[Finding]:
    """One finding per distinct (weight or bias) filler, listing the layers that use it."""
    groups: dict[tuple[str, str], list[str]] = {}
    for layer in net.layer:
        field = WEIGHTED.get(layer.type)
        if field is None:
            continue
        p = getattr(layer, field)
        groups.setdefault(("weight", str(p.weight_filler)), []).append(layer.name)
        if getattr(p, "bias_term", True):
            groups.setdefault(("bias", str(p.bias_filler)), []).append(layer.name)
    findings = []
    for (blob, filler_text), names in groups.items():
        filler = prototxt.parse_text(filler_text, F())
        target = f"for name in {names!r}:\n    w = getattr(model, name).{blob}\n"
        caffe, code = _filler(filler)
        if blob == "bias":
            port = ("nn.Conv2d/nn.Linear draw biases from U(±1/√fan_in); Keras zeros them")
        else:
            port = ("nn.Conv2d/nn.Linear use kaiming_uniform_(a=√5), i.e. U(±1/√fan_in); Keras uses "
                    "glorot_uniform over (fan_in + fan_out)/2")
        explicit = "" if filler_text else " (no filler given: Caffe's default, constant 0)"
        findings.append(Finding("init", f"{blob} of {', '.join(names)}", caffe + explicit, port,
                                target + "    " + code))
    return findings


def _filler(f: caffe_pb2.FillerParameter) -> tuple[str, str]:
    norm = F.VarianceNorm.Name(f.variance_norm)
    n = {"FAN_IN": "fan_in", "FAN_OUT": "fan_out", "AVERAGE": "(fan_in + fan_out) / 2"}[norm]
    fans = ("fan_in, fan_out = w[0].numel(), w.numel() // w.shape[1]"
            "  # Caffe's count/num, count/channels\n    ")
    if f.type == "constant":
        return f"constant {f.value:g}", f"nn.init.constant_(w, {f.value:.7g})"
    if f.type == "gaussian":
        sparse = f" (sparse {f.sparse}: then zeroed to ~{f.sparse} non-zeros per output)" * (f.sparse >= 0)
        return (f"gaussian mean {f.mean:g} std {f.std:g}{sparse}",
                f"nn.init.normal_(w, mean={f.mean:.7g}, std={f.std:.7g})")
    if f.type == "uniform":
        return f"uniform [{f.min:g}, {f.max:g}]", f"nn.init.uniform_(w, {f.min:.7g}, {f.max:.7g})"
    if f.type == "xavier":
        return (f"xavier: U(±√(3/n)) with n = {n} (variance_norm {norm}; not Glorot's "
                f"(fan_in + fan_out)/2 unless AVERAGE)",
                f"{fans}bound = math.sqrt(3.0 / ({n}))\n    nn.init.uniform_(w, -bound, bound)")
    if f.type == "msra":
        return (f"msra: N(0, √(2/n)) with n = {n} (variance_norm {norm})",
                f"{fans}nn.init.normal_(w, 0.0, math.sqrt(2.0 / ({n})))")
    if f.type == "positive_unitball":
        return ("positive_unitball: U(0, 1), each output's weights scaled to sum to 1",
                "nn.init.uniform_(w, 0, 1)\n"
                "    w.data /= w.data.flatten(1).sum(1).view(-1, *[1] * (w.dim() - 1))")
    if f.type == "bilinear":
        return ("bilinear upsampling kernel (for Deconvolution)",
                "k = w.shape[-1]; f = math.ceil(k / 2); c = (2 * f - 1 - f % 2) / (2 * f)\n"
                "    r = 1 - (torch.arange(k) / f - c).abs()\n    w.data[:] = r.view(-1, 1) * r.view(1, -1)")
    return f"filler {f.type!r}", f"# Caffe's {f.type!r} filler has no torch.nn.init counterpart"


def _lrn(layer: caffe_pb2.LayerParameter) -> Finding:
    p = layer.lrn_param
    if p.norm_region == caffe_pb2.LRNParameter.WITHIN_CHANNEL:
        return Finding(
            "LRN", f"{layer.name} (WITHIN_CHANNEL)",
            f"y = x·(1 + α·mean over the zero-padded {p.local_size}×{p.local_size} square of x²)^(−β), "
            f"α = {p.alpha:g}, β = {p.beta:g}; k is ignored",
            "nn.LocalResponseNorm normalises across channels only; TensorFlow's LRN too",
            f"s = F.avg_pool2d(x * x, {p.local_size}, stride=1, padding={(p.local_size - 1) // 2}, "
            f"count_include_pad=True)\ny = x * (1 + {p.alpha:.7g} * s) ** -{p.beta:.7g}")
    radius = (p.local_size - 1) // 2
    return Finding(
        "LRN", layer.name,
        f"y = x·(k + α/n·Σ x²)^(−β) over n = {p.local_size} channels: α = {p.alpha:g} is divided by n",
        f"TensorFlow's local_response_normalization takes depth_radius = {radius} and uses alpha "
        f"undivided: pass alpha = {p.alpha:g}/{p.local_size}; nn.LocalResponseNorm divides by n like Caffe",
        f"nn.LocalResponseNorm(size={p.local_size}, alpha={p.alpha:.7g}, beta={p.beta:.7g}, k={p.k:.7g})\n"
        f"# TensorFlow: tf.nn.local_response_normalization(x, depth_radius={radius}, bias={p.k:.7g}, "
        f"alpha={p.alpha:.7g} / {p.local_size}, beta={p.beta:.7g})")


def _pooling(layer: caffe_pb2.LayerParameter) -> Finding:
    p = layer.pooling_param
    pool = P.PoolMethod.Name(p.pool)
    if p.global_pooling:
        return Finding("pooling", f"{layer.name} ({pool}, global)", "one window over the whole H×W",
                       "fixed-size pooling layers break when the input size changes",
                       "F.adaptive_max_pool2d(x, 1)" if pool == "MAX" else "F.adaptive_avg_pool2d(x, 1)")
    kernel = (p.kernel_h, p.kernel_w) if p.HasField("kernel_h") else (p.kernel_size,) * 2
    stride = (p.stride_h, p.stride_w) if p.HasField("stride_h") else (p.stride,) * 2
    pad = (p.pad_h, p.pad_w) if p.HasField("pad_h") else (p.pad,) * 2
    ceil = p.round_mode == P.CEIL
    caffe = (f"{pool} {kernel[0]}×{kernel[1]} stride {stride} pad {pad}, output size rounded "
             f"{'UP (ceil)' if ceil else 'down (floor)'}; the last window is clipped to the image")
    port = ("nn.MaxPool2d/AvgPool2d and tf.nn.max_pool round down: a row/column fewer whenever "
            "H + 2·pad − kernel is not a multiple of the stride")
    kind = "Max" if pool == "MAX" else "Avg"
    code = f"nn.{kind}Pool2d({kernel}, stride={stride}, padding={pad}, ceil_mode={ceil})"
    if pool == "AVE" and (any(pad) or ceil):
        caffe += "; AVE divides by the window clipped to the padded image (padding counts, overhang not)"
        port += "; count_include_pad counts the ceil overhang too (and TF's SAME padding counts no padding)"
        code = ("# exact: class Pool of the exported module (recaffe export -output net.py)\n"
                f"Pool('AVE', {kernel}, {stride}, {pad}, ceil_mode={ceil})")
    return Finding("pooling", layer.name, caffe, port, code)


def _batch_norm(layer: caffe_pb2.LayerParameter) -> Finding:
    p = layer.batch_norm_param
    return Finding(
        "BatchNorm", layer.name,
        f"no affine part (a Scale layer follows); blobs are running SUMS μ_sum, σ²_sum and a scale factor s, "
        f"updated s ← {p.moving_average_fraction:g}·s + 1, σ²_sum gets m/(m−1)·σ²; inference uses "
        f"μ_sum/s and σ²_sum/s; eps {p.eps:g}",
        "nn.BatchNorm2d keeps running averages with momentum 0.1 (weight 0.1 on the new batch, not "
        f"1 − {p.moving_average_fraction:g}); loading Caffe's blobs as running_mean/var without dividing by "
        "s gives wrong statistics",
        f"bn = nn.BatchNorm2d(C, eps={p.eps:.7g}, momentum=None, affine=False)  # cumulative average\n"
        "s = blobs[2][0]; f = 0 if s == 0 else 1 / s\n"
        "bn.running_mean.copy_(blobs[0] * f); bn.running_var.copy_(blobs[1] * f)\n"
        "# training with Caffe's moving_average_fraction: the exported class BatchNorm")


def _softmax_loss(layer: caffe_pb2.LayerParameter) -> Finding:
    lp = layer.loss_param
    mode = caffe_pb2.LossParameter.NormalizationMode.Name(
        lp.normalization if lp.HasField("normalization") or not lp.HasField("normalize")
        else (caffe_pb2.LossParameter.VALID if lp.normalize else caffe_pb2.LossParameter.BATCH_SIZE))
    ignore = lp.ignore_label if lp.HasField("ignore_label") else None
    weight = layer.loss_weight[0] if layer.loss_weight else 1.0
    ignore_arg = "" if ignore is None else f", ignore_index={ignore}"
    divide = {"VALID": "", "FULL": " / label.numel()", "BATCH_SIZE": " / x.shape[0]", "NONE": ""}[mode]
    reduction = "mean" if mode == "VALID" else "sum"
    return Finding(
        "loss", layer.name,
        f"−Σ log(max(p, FLT_MIN)) divided by the {mode} normaliser"
        f"{'' if ignore is None else f', positions labelled {ignore} ignored'}; loss_weight {weight:g}; "
        "labels are floats truncated to int",
        "CrossEntropyLoss averages over every position (or the non-ignored ones); BATCH_SIZE over a "
        "spatial output divides by N, not N·H·W",
        f"loss = F.cross_entropy(x, label.long(), reduction='{reduction}'{ignore_arg}){divide}"
        f" * {weight:.7g}")


# ---------------------------------------------------------------- the solver
def _solver_findings(s: caffe_pb2.SolverParameter, net: caffe_pb2.NetParameter) -> list[Finding]:
    findings = [Finding(
        "update", f"solver type {s.type}, momentum {s.momentum:g}, lr_policy {s.lr_policy!r}",
        "the momentum history holds lr·g (h ← μ·h + lr·g; w ← w − h), so a rate change takes effect at once",
        "torch.optim.SGD keeps v ← μ·v + g and steps lr·v: after every rate change the two runs part "
        "(tests/export/test_optimizer.py shows it); TF's MomentumOptimizer likewise",
        "from recaffe.export import caffe_optimizer, to_torch\n"
        "model = to_torch(recaffe.Net('train_val.prototxt', recaffe.TRAIN))\n"
        "optimizer, scheduler = caffe_optimizer(model, 'solver.prototxt')\n"
        "for batch in data:  # iter_size batches per step when iter_size > 1\n"
        "    model.caffe_loss(model(**batch)).backward()\n"
        "    optimizer.step(); scheduler.step(); optimizer.zero_grad()")]
    findings.append(_lr_policy(s))
    if s.weight_decay:
        findings.append(_weight_decay(s, net))
    if s.clip_gradients >= 0:
        findings.append(Finding(
            "clip", f"clip_gradients {s.clip_gradients:g}",
            "scales all gradients by clip/‖g‖ (global L2 norm) BEFORE weight decay is added",
            "clip_grad_norm_ after a weight-decaying optimizer clips decay too",
            f"torch.nn.utils.clip_grad_norm_(model.parameters(), {s.clip_gradients:.7g})"
            "  # before adding decay"))
    if s.iter_size > 1:
        findings.append(Finding(
            "iter_size", f"iter_size {s.iter_size}",
            f"accumulates {s.iter_size} forward/backward passes, then divides the gradient by {s.iter_size}",
            "one backward per step; the effective batch is iter_size times smaller",
            f"for _ in range({s.iter_size}): loss(model(next(batches))).backward()\n"
            f"for w in model.parameters(): w.grad /= {s.iter_size}"))
    return findings


def _lr_policy(s: caffe_pb2.SolverParameter) -> Finding:
    policies = {
        "fixed": f"{s.base_lr:.7g}",
        "step": f"{s.base_lr:.7g} * {s.gamma:.7g} ** (it // {s.stepsize})",
        "exp": f"{s.base_lr:.7g} * {s.gamma:.7g} ** it",
        "inv": f"{s.base_lr:.7g} * (1 + {s.gamma:.7g} * it) ** -{s.power:.7g}",
        "multistep": f"{s.base_lr:.7g} * {s.gamma:.7g} ** sum(it >= v for v in {list(s.stepvalue)})",
        "poly": f"{s.base_lr:.7g} * (1 - it / {s.max_iter}) ** {s.power:.7g}",
        "sigmoid": f"{s.base_lr:.7g} / (1 + math.exp(-{s.gamma:.7g} * (it - {s.stepsize})))",
    }
    formula = policies.get(s.lr_policy, f"# unknown lr_policy {s.lr_policy!r}")
    return Finding(
        "rate", f"lr_policy {s.lr_policy!r}",
        f"the rate is recomputed every ITERATION: lr(it) = {formula}",
        "torch schedulers step per epoch in most training loops; StepLR/ExponentialLR have no inv, poly "
        "or sigmoid form",
        "scheduler = torch.optim.lr_scheduler.LambdaLR(\n"
        f"    optimizer, lambda it: ({formula}) / {s.base_lr:.7g})\n"
        "# call scheduler.step() after every optimizer.step(), not every epoch")


def _weight_decay(s: caffe_pb2.SolverParameter, net: caffe_pb2.NetParameter) -> Finding:
    mults = [(layer.name, j, spec.lr_mult, spec.decay_mult) for layer in net.layer
             for j, spec in enumerate(layer.param) if spec.lr_mult != 1 or spec.decay_mult != 1]
    listed = ", ".join(f"{name}[{j}] lr×{lr:g} decay×{decay:g}" for name, j, lr, decay in mults[:6])
    more = f" (and {len(mults) - 6} more)" if len(mults) > 6 else ""
    kind = s.regularization_type
    adaptive = s.type in ("Adam", "AdaGrad", "RMSProp", "AdaDelta")
    port = ("AdamW/decoupled decay and Keras' kernel_regularizer (added to the loss, ×2 in the gradient) "
            "differ; one weight_decay for all parameters ignores decay_mult")
    if kind == "L1":
        port = "no torch optimizer has L1 decay"
    return Finding(
        "regularisation", f"weight_decay {s.weight_decay:g} ({kind}){'; ' + listed + more if mults else ''}",
        f"adds weight_decay·decay_mult·{'w' if kind == 'L2' else 'sign(w)'} to the gradient before "
        f"{'the adaptive statistics' if adaptive else 'momentum'}; lr_mult/decay_mult scale it per blob",
        port,
        "groups = [{'params': [w], 'lr': base_lr * lr_mult, 'weight_decay': "
        f"{s.weight_decay:.7g} * decay_mult}}\n"
        "          for name, w in model.named_parameters()\n"
        "          for lr_mult, decay_mult in [model.caffe_params[name]]]\n"
        f"torch.optim.SGD(groups, momentum={s.momentum:.7g})  # coupled L2 like Caffe (but see 'update')")
