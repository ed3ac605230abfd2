"""Every exported layer type and option, one small net each, through ONNX (onnxruntime) and
to_torch against recaffe's forward (1e-5 relative to the output's largest magnitude); and the
clear errors for what has no exact form."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import recaffe
from recaffe.export import ExportError, to_torch
from recaffe.export.graph import walk
from recaffe.io import prototxt
from recaffe.proto import caffe_pb2

onnxruntime = pytest.importorskip("onnxruntime")
from recaffe.export.onnx import build  # noqa: E402  (needs the onnx package)

TOLERANCE = 1e-5


def conv(extra: str) -> str:
    return f'type: "Convolution" convolution_param {{ {extra} }}'


def pool(extra: str) -> str:
    return f'type: "Pooling" pooling_param {{ {extra} }}'


# id -> (bottom shapes, the layer under test: type and params; bottoms b0.., tops t0..)
CASES: dict[str, tuple[list[tuple[int, ...]], str]] = {
    "conv_group_dilation": ([(2, 4, 9, 9)], conv("num_output: 6 kernel_size: 3 pad: 2 stride: 2 dilation: 2 "
                                                 "group: 2")),
    "conv_rect_no_bias": ([(2, 3, 8, 7)], conv("num_output: 2 kernel_h: 3 kernel_w: 2 pad_h: 1 pad_w: 0 "
                                               "stride_h: 1 stride_w: 2 bias_term: false")),
    "deconv_group_dilation": ([(2, 4, 5, 5)], 'type: "Deconvolution" convolution_param { num_output: 6 '
                              "kernel_size: 3 stride: 2 pad: 1 dilation: 2 group: 2 }"),
    "max_ceil_clipped": ([(2, 3, 6, 6)], pool("pool: MAX kernel_size: 3 stride: 2")),
    "max_pad": ([(2, 3, 7, 7)], pool("pool: MAX kernel_size: 3 stride: 2 pad: 1")),
    "ave_pad_overhang": ([(2, 3, 6, 6)], pool("pool: AVE kernel_size: 3 stride: 2 pad: 1")),
    "ave_ceil_no_pad": ([(2, 3, 6, 6)], pool("pool: AVE kernel_size: 3 stride: 2")),
    "ave_rect_pad": ([(2, 3, 7, 8)], pool("pool: AVE kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 "
                                          "pad_h: 1 pad_w: 1")),
    "ave_global": ([(2, 3, 5, 6)], pool("pool: AVE global_pooling: true")),
    "max_global": ([(2, 3, 5, 6)], pool("pool: MAX global_pooling: true")),
    "max_floor_short": ([(2, 3, 9, 9)], pool("pool: MAX kernel_size: 2 stride: 3 round_mode: FLOOR")),
    "ave_floor_short": ([(2, 3, 9, 9)], pool("pool: AVE kernel_size: 2 stride: 3 round_mode: FLOOR")),
    "lrn_across": ([(2, 7, 4, 4)], 'type: "LRN" lrn_param { local_size: 5 alpha: 0.3 beta: 0.75 k: 2 }'),
    "lrn_within": ([(2, 3, 6, 6)], 'type: "LRN" lrn_param { local_size: 3 alpha: 0.5 beta: 0.6 k: 2 '
                   "norm_region: WITHIN_CHANNEL }"),
    "ip": ([(3, 2, 3, 4)], 'type: "InnerProduct" inner_product_param { num_output: 5 }'),
    "ip_axis2_transpose": ([(3, 2, 3, 4)], 'type: "InnerProduct" inner_product_param { num_output: 5 axis: 2 '
                           "transpose: true }"),
    "batchnorm_scale": ([(2, 3, 4, 4)], 'type: "BatchNorm" batch_norm_param { eps: 0.001 }'),
    "batchnorm_2d": ([(4, 5)], 'type: "BatchNorm"'),
    "scale_bias": ([(2, 3, 4, 4)], 'type: "Scale" scale_param { bias_term: true }'),
    "scale_axis0_two_axes": ([(2, 3, 4, 4)], 'type: "Scale" scale_param { axis: 0 num_axes: 2 }'),
    "scale_two_bottoms": ([(2, 3, 4, 4), (3, 4)], 'type: "Scale" scale_param { axis: 1 }'),
    "bias": ([(2, 3, 4, 4)], 'type: "Bias"'),
    "relu": ([(2, 3, 4)], 'type: "ReLU"'),
    "leaky_relu": ([(2, 3, 4)], 'type: "ReLU" relu_param { negative_slope: 0.1 }'),
    "prelu": ([(2, 3, 4, 4)], 'type: "PReLU"'),
    "prelu_shared": ([(2, 3, 4, 4)], 'type: "PReLU" prelu_param { channel_shared: true }'),
    "elu": ([(2, 3, 4)], 'type: "ELU" elu_param { alpha: 0.5 }'),
    "sigmoid": ([(2, 3, 4)], 'type: "Sigmoid"'),
    "tanh": ([(2, 3, 4)], 'type: "TanH"'),
    "absval": ([(2, 3, 4)], 'type: "AbsVal"'),
    "bnll": ([(2, 3, 4)], 'type: "BNLL"'),
    "threshold": ([(2, 3, 4)], 'type: "Threshold" threshold_param { threshold: 0.2 }'),
    "clip": ([(2, 3, 4)], 'type: "Clip" clip_param { min: -0.5 max: 0.7 }'),
    "swish": ([(2, 3, 4)], 'type: "Swish" swish_param { beta: 1.5 }'),
    "power": ([(2, 3, 4)], 'type: "Power" power_param { power: 2 scale: 0.5 shift: 3 }'),
    "power_linear": ([(2, 3, 4)], 'type: "Power" power_param { scale: -2 shift: 1 }'),
    "power_zero": ([(2, 3, 4)], 'type: "Power" power_param { power: 0 }'),
    "exp": ([(2, 3, 4)], 'type: "Exp"'),
    "exp_base_shift": ([(2, 3, 4)], 'type: "Exp" exp_param { base: 2 scale: 0.5 shift: 1 }'),
    "log_base_shift": ([(2, 3, 4)], 'type: "Log" log_param { base: 10 scale: 0.5 shift: 5 }'),
    "dropout": ([(2, 3, 4)], 'type: "Dropout" dropout_param { dropout_ratio: 0.3 }'),
    "softmax": ([(2, 5)], 'type: "Softmax"'),
    "softmax_axis2": ([(2, 3, 4, 2)], 'type: "Softmax" softmax_param { axis: 2 }'),
    "concat": ([(2, 3, 4), (2, 2, 4)], 'type: "Concat"'),
    "concat_axis2": ([(2, 3, 4), (2, 3, 1)], 'type: "Concat" concat_param { axis: 2 }'),
    "slice": ([(2, 6, 3)], 'type: "Slice" slice_param { slice_point: 1 slice_point: 4 }'),
    "slice_equal_axis2": ([(2, 3, 6)], 'type: "Slice" slice_param { axis: -1 }'),
    "eltwise_sum_coeff": ([(2, 3, 4), (2, 3, 4), (2, 3, 4)], 'type: "Eltwise" eltwise_param { coeff: 0.5 '
                          "coeff: -2 coeff: 1 }"),
    "eltwise_prod": ([(2, 3, 4), (2, 3, 4)], 'type: "Eltwise" eltwise_param { operation: PROD }'),
    "eltwise_max": ([(2, 3, 4), (2, 3, 4)], 'type: "Eltwise" eltwise_param { operation: MAX }'),
    "crop": ([(2, 3, 8, 8), (2, 3, 5, 4)], 'type: "Crop" crop_param { offset: 1 offset: 2 }'),
    "crop_axis1_one_offset": ([(2, 5, 8, 8), (2, 3, 5, 4)], 'type: "Crop" crop_param { axis: 1 offset: 1 }'),
    "flatten": ([(2, 3, 4, 5)], 'type: "Flatten"'),
    "flatten_middle": ([(2, 3, 4, 5)], 'type: "Flatten" flatten_param { axis: 1 end_axis: 2 }'),
    "reshape": ([(2, 3, 4, 5)], 'type: "Reshape" reshape_param { shape { dim: 0 dim: -1 dim: 5 } }'),
    "reshape_axis_num_axes": ([(2, 6, 4)], 'type: "Reshape" reshape_param { shape { dim: 2 dim: 3 } axis: 1 '
                              "num_axes: 1 }"),
    "reduction_sum": ([(2, 3, 4)], 'type: "Reduction" reduction_param { axis: 1 coeff: 2 }'),
    "reduction_asum": ([(2, 3, 4)], 'type: "Reduction" reduction_param { operation: ASUM axis: 1 }'),
    "reduction_sumsq": ([(2, 3, 4)], 'type: "Reduction" reduction_param { operation: SUMSQ axis: 2 }'),
    "reduction_mean": ([(2, 3, 4)], 'type: "Reduction" reduction_param { operation: MEAN axis: 1 '
                       "coeff: -1 }"),
    "argmax": ([(2, 3, 4, 4)], 'type: "ArgMax"'),
    "argmax_max_val": ([(2, 3, 4, 4)], 'type: "ArgMax" argmax_param { out_max_val: true }'),
    "argmax_axis": ([(2, 3, 4, 4)], 'type: "ArgMax" argmax_param { axis: 1 }'),
    "argmax_axis_max_val": ([(2, 3, 4, 4)], 'type: "ArgMax" argmax_param { axis: 2 out_max_val: true }'),
    "mvn": ([(2, 3, 4, 5)], 'type: "MVN"'),
    "mvn_across_mean_only": ([(2, 3, 4, 5)], 'type: "MVN" mvn_param { across_channels: true '
                             "normalize_variance: false }"),
    "mvn_2d": ([(3, 4)], 'type: "MVN" mvn_param { across_channels: true eps: 0.001 }'),
    "tile": ([(2, 3, 4)], 'type: "Tile" tile_param { axis: -1 tiles: 3 }'),
    "embed": ([(2, 3)], 'type: "Embed" embed_param { num_output: 4 input_dim: 5 }'),
    "conv3d": ([(2, 2, 4, 5, 5)], conv("num_output: 3 kernel_size: 3 pad: 1 stride: 2")),
    "conv1d": ([(2, 2, 7)], conv("num_output: 3 kernel_size: 3 dilation: 2")),
    "deconv3d": ([(2, 2, 3, 3, 3)], 'type: "Deconvolution" convolution_param { num_output: 2 kernel_size: 2 '
                 "stride: 2 }"),
    "im2col": ([(2, 3, 7, 6)], 'type: "Im2col" convolution_param { kernel_size: 3 stride: 2 pad: 1 '
               "dilation: 2 }"),
    "parameter": ([], 'type: "Parameter" parameter_param { shape { dim: 2 dim: 3 } }'),
    "batch_reindex": ([(4, 3), (5,)], 'type: "BatchReindex"'),
    "spp_max": ([(2, 3, 7, 6)], 'type: "SPP" spp_param { pyramid_height: 3 }'),
    "spp_ave": ([(2, 3, 9, 9)], 'type: "SPP" spp_param { pyramid_height: 2 pool: AVE }'),
    "spp_one_level": ([(2, 3, 5, 6)], 'type: "SPP" spp_param { pyramid_height: 1 }'),
}
TOPS = {"slice": 3, "slice_equal_axis2": 3}


def net_param(shapes: list[tuple[int, ...]], layer: str, tops: int = 1) -> caffe_pb2.NetParameter:
    """Input layers in<i> (tops b<i>) feeding layer L (tops t<i>)."""
    text = "".join(f'layer {{ name: "in{i}" type: "Input" top: "b{i}" input_param {{ shape {{ '
                   f'{" ".join(f"dim: {d}" for d in shape)} }} }} }}\n' for i, shape in enumerate(shapes))
    bottoms = " ".join(f'bottom: "b{i}"' for i in range(len(shapes)))
    top_list = " ".join(f'top: "t{i}"' for i in range(tops))
    text += f'layer {{ name: "L" {bottoms} {top_list} {layer} }}\n'
    return prototxt.parse_text(text, caffe_pb2.NetParameter())


def seeded_net(param: caffe_pb2.NetParameter, phase: int = recaffe.TEST) -> recaffe.Net:
    net = recaffe.Net(param, phase)
    generator = torch.Generator().manual_seed(3)
    for name, blobs in net.layer_params.items():
        for blob in blobs:
            blob.data.copy_(torch.randn(blob.shape, generator=generator))
        if net.layer_by_name(name).type == "BatchNorm":
            blobs[1].data.abs_()  # a variance sum
            blobs[2].data.fill_(2.5)  # the scale factor
    indices = any(layer.type in ("Embed", "BatchReindex") for layer in net.layers)
    for name in net.blob_names:
        if name.startswith("b"):
            values = torch.randn(net.blobs[name].shape, generator=generator) * 2
            if indices:  # integer indices below 4 (Embed's input_dim 5, BatchReindex's batch 4)
                values = values.abs().mul(2).clamp(max=3).floor()
            net.blobs[name].data.copy_(values)
    return net


def relative_error(ours: torch.Tensor | np.ndarray, reference: torch.Tensor) -> float:
    ours_t = torch.as_tensor(ours).detach().reshape(reference.shape)
    return float((ours_t - reference).abs().max()) / max(float(reference.abs().max()), 1e-30)


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_matches_recaffe(case: str) -> None:
    shapes, layer = CASES[case]
    net = seeded_net(net_param(shapes, layer, TOPS.get(case, 1)))
    inputs = {name: net.blobs[name].data.clone() for name in net.blob_names if name.startswith("b")}
    net.forward()
    graph = walk(net)
    reference = {blob: net.blobs[blob].data for blob, _ in graph.outputs}
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(build(net).SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
    got = session.run([value for _, value in graph.outputs], {k: v.numpy() for k, v in inputs.items()})
    with torch.no_grad():
        torch_out = to_torch(net)(**inputs)
    for (blob, _), onnx_value in zip(graph.outputs, got):
        assert math.isfinite(float(reference[blob].abs().max()))
        assert relative_error(onnx_value, reference[blob]) <= TOLERANCE, f"onnx {blob}"
        assert relative_error(torch_out[blob], reference[blob]) <= TOLERANCE, f"torch {blob}"


def test_in_place_chain_and_split() -> None:
    """In-place layers and a blob read by two layers (Caffe's Split) keep their values apart."""
    param = net_param([(2, 3, 4, 4)], 'type: "Scale" scale_param { bias_term: true }')
    extra = ('layer { name: "relu" type: "ReLU" bottom: "t0" top: "t0" }\n'
             'layer { name: "sum" type: "Eltwise" bottom: "t0" bottom: "b0" top: "s" }\n'
             'layer { name: "tanh" type: "TanH" bottom: "s" top: "s" }\n'
             'layer { name: "silence" type: "Silence" bottom: "b0" }\n')
    param.MergeFrom(prototxt.parse_text(extra, caffe_pb2.NetParameter()))
    net = seeded_net(param)
    x = net.blobs["b0"].data.clone()
    net.forward()
    session = onnxruntime.InferenceSession(build(net).SerializeToString(), providers=["CPUExecutionProvider"])
    (s,) = session.run(["s"], {"b0": x.numpy()})
    assert relative_error(s, net.blobs["s"].data) <= TOLERANCE
    with torch.no_grad():
        out = to_torch(net)(b0=x)
    assert relative_error(out["s"], net.blobs["s"].data) <= TOLERANCE


@pytest.mark.parametrize(("layer", "tops", "phase", "message"), [
    ('type: "SoftmaxWithLoss"', 1, recaffe.TEST, "loss layer is training-only"),
    ('type: "ArgMax" argmax_param { top_k: 2 }', 1, recaffe.TEST, "top_k 2"),
    ('type: "BatchNorm"', 1, recaffe.TRAIN, "training mode"),
    ('type: "Pooling" pooling_param { kernel_size: 2 }', 2, recaffe.TEST, "mask top"),
    ('type: "Filter"', 1, recaffe.TEST, "type Filter"),
    ('type: "Im2col" convolution_param { kernel_size: 2 axis: 2 }', 1, recaffe.TEST, "axis other than 1"),
])
def test_no_exact_form_is_a_clear_error(layer: str, tops: int, phase: int, message: str) -> None:
    shapes = [(2, 3, 4, 4), (2, 1, 4, 4)] if "Softmax" in layer else [(2, 3, 4, 4)]
    if "Filter" in layer:
        shapes = [(2, 3, 4, 4), (2, 1)]
    net = seeded_net(net_param(shapes, layer, tops), phase)
    with pytest.raises(ExportError, match=f"layer 'L' .*{message}"):
        build(net)


def test_every_exported_type_has_a_case() -> None:
    from recaffe.export import onnx, torch_module

    tested = {re.findall(r"type: \"(\w+)\"", layer)[0] for _, layer in CASES.values()}
    assert set(onnx.EMITTERS) - tested == {"Silence"}  # no output: test_in_place_chain_and_split
    losses = {name for name, _, _ in LOSSES}
    assert set(torch_module.EMITTERS) - tested - losses == {"Silence", "Accuracy"}


def test_shared_parameters_and_awkward_names() -> None:
    """Layers sharing a named blob share one torch Parameter; layer names that nn.Module uses
    (eval, inputs) or that are no identifiers still give a working module."""
    param = net_param([(2, 6)], 'type: "InnerProduct" param { name: "w" } '
                                "inner_product_param { num_output: 6 }")
    extra = ('layer { name: "eval" type: "InnerProduct" bottom: "t0" top: "inputs" param { name: "w" } '
             "inner_product_param { num_output: 6 } }\n"
             'layer { name: "1/relu" type: "ReLU" bottom: "inputs" top: "inputs" }\n')
    param.MergeFrom(prototxt.parse_text(extra, caffe_pb2.NetParameter()))
    net = seeded_net(param)
    x = net.blobs["b0"].data.clone()
    net.forward()
    module = to_torch(net)
    assert module.eval_2.weight is module.L.weight  # type: ignore[union-attr]
    assert sorted(module.caffe_params) == ["L.bias", "L.weight", "eval_2.bias"]
    with torch.no_grad():
        out = module.eval()(b0=x)
    assert relative_error(out["inputs"], net.blobs["inputs"].data) <= TOLERANCE
    session = onnxruntime.InferenceSession(build(net).SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = session.run(["inputs"], {"b0": x.numpy()})
    assert relative_error(y, net.blobs["inputs"].data) <= TOLERANCE


LOSSES = [
    ("SoftmaxWithLoss", [(4, 5, 3), (4, 3)], "loss_param { ignore_label: 2 }"),
    ("SoftmaxWithLoss", [(4, 5, 3), (4, 3)], "loss_param { normalization: BATCH_SIZE }"),
    ("SoftmaxWithLoss", [(4, 5), (4,)], "loss_param { normalization: FULL } loss_weight: 2"),
    ("SigmoidCrossEntropyLoss", [(4, 6), (4, 6)], ""),
    ("SigmoidCrossEntropyLoss", [(4, 6), (4, 6)], "loss_param { ignore_label: 1 normalization: VALID }"),
    ("EuclideanLoss", [(4, 3, 2), (4, 6)], "loss_weight: 0.5"),
    ("HingeLoss", [(4, 5), (4,)], ""),
    ("HingeLoss", [(4, 5, 1, 1), (4,)], "hinge_loss_param { norm: L2 }"),
    ("MultinomialLogisticLoss", [(4, 5), (4,)], ""),
]


@pytest.mark.parametrize(("layer_type", "shapes", "params"), LOSSES)
def test_loss_and_gradient_match_recaffe(layer_type: str, shapes: list[tuple[int, ...]], params: str) -> None:
    """The PyTorch loss and its autograd gradient equal recaffe's forward and backward."""
    param = net_param(shapes, f'type: "{layer_type}" {params}')
    param.force_backward = True
    net = seeded_net(param, recaffe.TRAIN)
    x = net.blobs["b0"].data
    x.mul_(3)
    labels = torch.randint(0, shapes[0][1], shapes[1], generator=torch.Generator().manual_seed(4))
    if layer_type == "SigmoidCrossEntropyLoss":
        labels = torch.randint(0, 2, shapes[1], generator=torch.Generator().manual_seed(4))
    if layer_type == "MultinomialLogisticLoss":
        x.abs_().add_(0.1)  # probabilities' stand-ins: positive
    if layer_type != "EuclideanLoss":
        net.blobs["b1"].data.copy_(labels.float())
    net.forward()
    net.backward()
    module = to_torch(net)
    inputs = {name: net.blobs[name].data.clone().requires_grad_(name == "b0") for name in ("b0", "b1")}
    outputs = module(**inputs)
    module.caffe_loss(outputs).backward()  # type: ignore[operator]
    assert relative_error(outputs["t0"].detach(), net.blobs["t0"].data) <= TOLERANCE
    assert relative_error(inputs["b0"].grad, net.blobs["b0"].diff) <= TOLERANCE  # type: ignore[arg-type]


@pytest.mark.parametrize("params", ["", "accuracy_param { top_k: 2 ignore_label: 1 }"])
def test_accuracy_matches_recaffe(params: str) -> None:
    param = net_param([(6, 4, 2), (6, 2)], f'type: "Accuracy" {params}', tops=2)
    net = seeded_net(param)
    labels = torch.randint(0, 4, (6, 2), generator=torch.Generator().manual_seed(2)).float()
    net.blobs["b1"].data.copy_(labels)
    net.forward()
    with torch.no_grad():
        out = to_torch(net)(b0=net.blobs["b0"].data, b1=labels)
    for top in ("t0", "t1"):
        assert torch.equal(out[top], net.blobs[top].data), top


@pytest.mark.parametrize("suffix", [".onnx", ".py"])
def test_a_failed_export_leaves_no_partial_file(tmp_path, monkeypatch: pytest.MonkeyPatch,
                                                suffix: str) -> None:
    """Exports are written atomically (recaffe.io.atomic): a write that fails midway leaves nothing
    under the file's name."""
    from recaffe.export import onnx as onnx_export
    from recaffe.export import torch_module

    def half_written(_: object, path: str) -> None:
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(onnx_export._onnx(), "save", half_written)
    monkeypatch.setattr(torch_module.torch, "save", half_written)
    net = seeded_net(net_param([(2, 3)], 'type: "ReLU"'))
    out = tmp_path / f"net{suffix}"
    with pytest.raises(OSError, match=r"net\.(onnx|pt)"):
        (onnx_export.to_onnx if suffix == ".onnx" else torch_module.write_torch)(net, out)
    assert not out.with_suffix(".pt").exists() and (suffix == ".py" or not out.exists())
    assert [p.name for p in tmp_path.iterdir() if p.suffix != ".py"] == []
