"""Net rules: state filtering, Split insertion, in-place, sharing, loss weights, backward needs.

The Input layer (tested here, not through the LayerCase harness) provides the net inputs.
"""

from __future__ import annotations

import pytest
import torch

import recaffe
from recaffe import net_builder
from recaffe.io import prototxt
from recaffe.layer import LayerError
from recaffe.proto import caffe_pb2

IP = 'type: "InnerProduct" inner_product_param { num_output: %d weight_filler { type: "gaussian" std: 0.3 } }'


def net_param(text: str) -> caffe_pb2.NetParameter:
    return prototxt.parse_text(text, caffe_pb2.NetParameter())


def build(text: str, phase: int = recaffe.TRAIN, **kwargs) -> recaffe.Net:
    recaffe.set_random_seed(3)
    return recaffe.Net(net_param(text), phase, **kwargs)


# ------------------------------------------------------------------ state filtering
STAGED = """
name: "staged"
layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 } } }
layer { name: "always" type: "ReLU" bottom: "x" top: "a" }
layer { name: "train_only" type: "ReLU" bottom: "x" top: "t" include { phase: TRAIN } }
layer { name: "test_only" type: "ReLU" bottom: "x" top: "v" include { phase: TEST } }
layer { name: "level1" type: "ReLU" bottom: "x" top: "l1" include { min_level: 1 } }
layer { name: "below2" type: "ReLU" bottom: "x" top: "lb" include { max_level: 1 } }
layer { name: "stageA" type: "ReLU" bottom: "x" top: "sa" include { stage: "A" } }
layer { name: "stageAB" type: "ReLU" bottom: "x" top: "sab" include { stage: "A" stage: "B" } }
layer { name: "notB" type: "ReLU" bottom: "x" top: "nb" include { not_stage: "B" } }
layer { name: "AorB" type: "ReLU" bottom: "x" top: "aob" include { stage: "A" } include { stage: "B" } }
layer { name: "excludeA" type: "ReLU" bottom: "x" top: "ea" exclude { stage: "A" } }
"""


@pytest.mark.parametrize(
    ("phase", "level", "stages", "expected"),
    [
        (recaffe.TRAIN, 0, (), {"data", "always", "train_only", "below2", "notB", "excludeA"}),
        (recaffe.TEST, 0, (), {"data", "always", "test_only", "below2", "notB", "excludeA"}),
        (recaffe.TEST, 1, (), {"data", "always", "test_only", "level1", "below2", "notB", "excludeA"}),
        (recaffe.TEST, 2, (), {"data", "always", "test_only", "level1", "notB", "excludeA"}),
        (recaffe.TEST, 0, ("A",), {"data", "always", "test_only", "below2", "stageA", "notB", "AorB"}),
        (recaffe.TEST, 0, ("B",), {"data", "always", "test_only", "below2", "AorB", "excludeA"}),
        (recaffe.TEST, 0, ("A", "B"), {"data", "always", "test_only", "below2", "stageA", "stageAB", "AorB"}),
    ],
)
def test_state_rules_select_layers(phase, level, stages, expected) -> None:
    net = build(STAGED, phase, level=level, stages=stages)
    assert {layer.name for layer in net.layers if layer.type != "Split"} == expected


def test_include_and_exclude_together_is_an_error() -> None:
    text = (
        STAGED
        + 'layer { name: "both" type: "ReLU" bottom: "x" top: "b" '
        + "include { phase: TRAIN } exclude { phase: TEST } }"
    )
    with pytest.raises(ValueError, match="'both'.*either include rules or exclude rules"):
        build(text)


def test_layers_inherit_the_net_phase() -> None:
    net = build(STAGED, recaffe.TEST)
    assert all(layer.phase == recaffe.TEST for layer in net.layers)
    assert all(p.phase == recaffe.TEST for p in net.to_proto().layer)


def test_net_parameter_state_is_used_when_no_phase_is_given() -> None:
    param = net_param(STAGED + "state { phase: TRAIN stage: 'A' }")
    net = recaffe.Net(param)
    assert "stageA" in net.layer_names and "train_only" in net.layer_names


# ------------------------------------------------------------------ split insertion
SPLIT_NET = f"""
name: "split"
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
layer {{ name: "ip1" {IP % 4} bottom: "data" top: "ip1" }}
layer {{ name: "ip2" {IP % 4} bottom: "data" top: "ip2" }}
layer {{ name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }}
layer {{ name: "ip3" {IP % 4} bottom: "ip1" top: "ip3" }}
layer {{ name: "ip4" {IP % 4} bottom: "ip1" top: "ip4" }}
"""


def test_split_layers_are_inserted_with_caffes_names() -> None:
    param = net_builder.insert_splits(net_param(SPLIT_NET))
    layers = [(layer.name, layer.type, list(layer.bottom), list(layer.top)) for layer in param.layer]
    assert layers == [
        ("data", "Input", [], ["data"]),
        ("data_data_0_split", "Split", ["data"], ["data_data_0_split_0", "data_data_0_split_1"]),
        ("ip1", "InnerProduct", ["data_data_0_split_0"], ["ip1"]),
        ("ip2", "InnerProduct", ["data_data_0_split_1"], ["ip2"]),
        ("relu", "ReLU", ["ip1"], ["ip1"]),
        ("ip1_relu_0_split", "Split", ["ip1"], ["ip1_relu_0_split_0", "ip1_relu_0_split_1"]),
        ("ip3", "InnerProduct", ["ip1_relu_0_split_0"], ["ip3"]),
        ("ip4", "InnerProduct", ["ip1_relu_0_split_1"], ["ip4"]),
    ]


def test_no_split_for_a_single_consumer() -> None:
    text = f"""
    layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
    layer {{ name: "ip1" {IP % 4} bottom: "data" top: "ip1" }}
    """
    assert [layer.type for layer in net_builder.insert_splits(net_param(text)).layer] == [
        "Input",
        "InnerProduct",
    ]


def test_a_loss_weighted_top_that_is_also_consumed_gets_a_split() -> None:
    text = f"""
    layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
    layer {{ name: "ip1" {IP % 4} bottom: "data" top: "ip1" loss_weight: 2 }}
    layer {{ name: "relu" type: "ReLU" bottom: "ip1" top: "r" }}
    """
    param = net_builder.insert_splits(net_param(text))
    ip1, split = param.layer[1], param.layer[2]
    assert list(ip1.loss_weight) == []
    assert split.name == "ip1_ip1_0_split"
    assert list(split.loss_weight) == [2.0, 0.0]
    assert list(param.layer[3].bottom) == ["ip1_ip1_0_split_1"]


def test_split_gradients_are_summed() -> None:
    net = build(SPLIT_NET.replace('name: "split"', 'name: "split" force_backward: true'))
    net.blobs["data"].data.copy_(torch.randn(2, 3, generator=torch.Generator().manual_seed(0)))
    net.forward()
    for name in ("ip2", "ip3", "ip4"):
        net.blobs[name].diff.fill_(1.0)
    net.backward()
    data_split = net.layer_by_name("data_data_0_split")
    tops = net.top_vecs[net.layer_names.index("data_data_0_split")]
    torch.testing.assert_close(net.blobs["data"].diff, tops[0].diff + tops[1].diff)
    assert data_split.type == "Split"


# ------------------------------------------------------------------ wiring errors
def test_unknown_bottom_is_reported_with_layer_and_index() -> None:
    text = 'layer { name: "r" type: "ReLU" bottom: "nope" top: "y" }'
    with pytest.raises(ValueError, match="Unknown bottom blob 'nope' \\(layer 'r', bottom index 0\\)"):
        build(text)


def test_top_produced_twice_is_reported() -> None:
    text = """
    layer { name: "data" type: "Input" top: "x" top: "y" input_param { shape { dim: 1 } } }
    layer { name: "r" type: "ReLU" bottom: "x" top: "y" }
    """
    with pytest.raises(LayerError, match="'r'.*'y' produced by multiple sources"):
        build(text)


def test_unknown_layer_type_names_the_layer_and_known_types() -> None:
    with pytest.raises(LayerError, match="layer 'z': Unknown layer type: 'Zorro'.*known types:.*ReLU"):
        build('layer { name: "z" type: "Zorro" }')


def test_propagate_down_count_must_match_bottoms() -> None:
    text = """
    layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 1 } } }
    layer { name: "r" type: "ReLU" bottom: "x" top: "y" propagate_down: true propagate_down: false }
    """
    with pytest.raises(LayerError, match="'r'.*propagate_down"):
        build(text)


# ------------------------------------------------------------------ inputs, outputs, in-place
def test_inputs_in_layer_order_and_outputs_in_name_order() -> None:
    text = """
    layer { name: "in" type: "Input" top: "zeta" top: "alpha" input_param { shape { dim: 2 } } }
    layer { name: "r1" type: "ReLU" bottom: "zeta" top: "z2" }
    layer { name: "r2" type: "ReLU" bottom: "alpha" top: "b9" }
    layer { name: "r3" type: "ReLU" bottom: "alpha" top: "a5" }
    """
    net = build(text)
    assert net.inputs == ["zeta", "alpha"]
    assert net.outputs == ["a5", "b9", "z2"]



def test_output_elements_and_values_follow_the_output_order() -> None:
    text = """
    layer { name: "in" type: "Input" top: "zeta" top: "alpha" input_param { shape { dim: 2 } } }
    layer { name: "r1" type: "ReLU" bottom: "zeta" top: "z2" loss_weight: 0.5 }
    layer { name: "r2" type: "ReLU" bottom: "alpha" top: "a5" }
    """
    net = build(text)
    net.blobs["zeta"].data.copy_(torch.tensor([1.0, 2.0]))
    net.blobs["alpha"].data.copy_(torch.tensor([3.0, -4.0]))
    net.forward()
    assert net.output_elements() == [("a5", 0.0), ("a5", 0.0), ("z2", 0.5), ("z2", 0.5)]
    assert net.output_values().tolist() == [3.0, 0.0, 1.0, 2.0]
    assert build("layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 1 } } } "
                 "layer { name: 's' type: 'Silence' bottom: 'x' }").output_values().numel() == 0

def test_in_place_layers_share_one_blob() -> None:
    text = """
    layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 4 } } }
    layer { name: "r" type: "ReLU" bottom: "x" top: "x" }
    """
    net = build(text)
    assert net.blob_names == ["x"]
    net.blobs["x"].data.copy_(torch.tensor([-1.0, 2.0, -3.0, 4.0]))
    net.forward()
    assert net.blobs["x"].data.tolist() == [0.0, 2.0, 0.0, 4.0]
    assert net.outputs == ["x"]


@pytest.mark.parametrize("layer", [
    'name: "pool" type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 2 }',
    'name: "pool" type: "InnerProduct" inner_product_param { num_output: 4 }',
    'name: "pool" type: "AbsVal"',
])
def test_an_in_place_top_a_layer_cannot_take_is_refused_at_build_naming_the_layer(layer: str) -> None:
    text = ('layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 }'
            f' }} }} layer {{ {layer} bottom: "x" top: "x" }}')
    with pytest.raises(LayerError, match=r"layer 'pool' \(\w+\): in-place computation is not supported"):
        build(text)


@pytest.mark.parametrize("kind", ["ReLU", "Dropout", "BatchNorm", "Scale", "Softmax", "Power", "Eltwise"])
def test_layers_caffe_runs_in_place_build_in_place(kind: str) -> None:
    bottoms = 'bottom: "x" bottom: "y"' if kind == "Eltwise" else 'bottom: "x"'
    text = ('layer { name: "data" type: "Input" top: "x" top: "y" input_param { shape { dim: 2 dim: 3 } } }'
            f' layer {{ name: "l" type: "{kind}" {bottoms} top: "x" }}')
    assert "x" in build(text).blob_names


def test_legacy_input_fields_become_an_input_layer() -> None:
    text = """
    name: "legacy"
    input: "data" input_dim: 2 input_dim: 3 input_dim: 1 input_dim: 1
    layer { name: "r" type: "ReLU" bottom: "data" top: "y" }
    """
    net = recaffe.Net(net_param(text), recaffe.TEST)
    assert net.layer_names[0] == "input" and net.layers[0].type == "Input"
    assert net.blobs["data"].shape == (2, 3, 1, 1)
    assert net.inputs == ["data"]


# ------------------------------------------------------------------ loss weights
LOSS_NET = f"""
name: "loss"
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
layer {{ name: "ip1" {IP % 4} bottom: "data" top: "ip1" }}
layer {{ name: "ip2" {IP % 1} bottom: "ip1" top: "ip2" loss_weight: 0.5 }}
"""


def test_loss_weight_on_any_top_defines_the_loss() -> None:
    net = build(LOSS_NET)
    net.blobs["data"].data.copy_(torch.randn(2, 3, generator=torch.Generator().manual_seed(0)))
    loss = net.forward()
    assert loss == pytest.approx(0.5 * float(net.blobs["ip2"].data.sum()), rel=1e-6)
    assert net.blob_loss_weights[net.blob_names.index("ip2")] == 0.5
    assert torch.all(net.blobs["ip2"].diff == 0.5)


def test_loss_weight_scales_gradients_linearly() -> None:
    grads = []
    for weight in (1.0, 3.0):
        net = build(LOSS_NET.replace("loss_weight: 0.5", f"loss_weight: {weight}"))
        net.blobs["data"].data.fill_(0.25)
        net.forward()
        net.backward()
        grads.append(net.layer_by_name("ip1").blobs[0].diff.clone())
    torch.testing.assert_close(grads[1], 3 * grads[0])


def test_loss_weight_count_must_match_tops() -> None:
    text = LOSS_NET.replace("loss_weight: 0.5", "loss_weight: 0.5 loss_weight: 1")
    with pytest.raises(LayerError, match="'ip2'.*loss_weight must be unspecified or given once per top"):
        build(text)


# ------------------------------------------------------------------ backward needs
def test_layers_without_loss_skip_backward() -> None:
    text = LOSS_NET + f'layer {{ name: "side" {IP % 2} bottom: "ip1" top: "side" }}'
    net = build(text)
    need = dict(zip(net.layer_names, net.layer_need_backward))
    assert need["ip1"] and need["ip2"] and not need["side"]
    assert not need["data"]


def test_lr_mult_zero_means_no_param_gradient() -> None:
    text = LOSS_NET.replace('name: "ip1" ', 'name: "ip1" param { lr_mult: 0 } param { lr_mult: 0 } ')
    net = build(text)
    ip1 = net.layer_by_name("ip1")
    assert not dict(zip(net.layer_names, net.layer_need_backward))["ip1"]
    net.blobs["data"].data.fill_(1.0)
    net.forward()
    net.backward()
    assert torch.count_nonzero(ip1.blobs[0].diff) == 0


def test_force_backward_sets_every_flag() -> None:
    text = LOSS_NET.replace('name: "loss"', 'name: "loss" force_backward: true').replace(
        'name: "ip1" ', 'name: "ip1" param { lr_mult: 0 } '
    )
    net = build(text)
    assert all(net.layer_need_backward)
    assert net.layer_by_name("ip1").param_propagate_down == [True, True]
    net.blobs["data"].data.fill_(1.0)
    net.forward()
    net.backward()
    assert torch.count_nonzero(net.blobs["data"].diff) > 0


def test_propagate_down_false_stops_the_gradient() -> None:
    text = LOSS_NET.replace('bottom: "ip1" top: "ip2"', 'bottom: "ip1" top: "ip2" propagate_down: false')
    net = build(text)
    need = dict(zip(net.layer_names, net.layer_need_backward))
    assert need["ip2"] and not need["ip1"]
    net.blobs["data"].data.fill_(1.0)
    net.forward()
    net.backward()
    assert torch.count_nonzero(net.layer_by_name("ip1").blobs[0].diff) == 0
    assert torch.count_nonzero(net.layer_by_name("ip2").blobs[0].diff) > 0


def test_param_diffs_accumulate_until_cleared() -> None:
    net = build(LOSS_NET)
    net.blobs["data"].data.fill_(1.0)
    net.forward()
    net.backward()
    once = net.layer_by_name("ip2").blobs[0].diff.clone()
    net.backward()
    torch.testing.assert_close(net.layer_by_name("ip2").blobs[0].diff, 2 * once)
    net.clear_param_diffs()
    assert all(torch.count_nonzero(p.blob.diff) == 0 for p in net.learnable_params)


def test_forward_and_backward_between_layers() -> None:
    net = build(LOSS_NET)
    net.blobs["data"].data.fill_(1.0)
    full = net.forward()
    net.blobs["ip1"].data.fill_(0.0)
    partial = net.forward(start=2)
    assert partial == pytest.approx(0.5 * float(net.layer_by_name("ip2").blobs[1].data.sum()), abs=1e-6)
    assert full != partial
    with pytest.raises(IndexError):
        net.forward(start=0, end=7)


# ------------------------------------------------------------------ sharing
SHARED = f"""
name: "shared"
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
layer {{ name: "ip1" {IP % 3} bottom: "data" top: "ip1" param {{ name: "w" }} param {{ name: "b" }} }}
layer {{ name: "ip2" {IP % 3} bottom: "ip1" top: "ip2" param {{ name: "w" }} param {{ name: "b" }}
  loss_weight: 1 }}
"""


def test_named_params_share_data_and_diff() -> None:
    net = build(SHARED)
    ip1, ip2 = net.layer_by_name("ip1"), net.layer_by_name("ip2")
    assert len(net.learnable_params) == 2 and len(net.params) == 4
    assert net.param_owners == [-1, -1, 0, 1]
    ip1.blobs[0].data.fill_(0.5)
    assert torch.all(ip2.blobs[0].data == 0.5)
    net.blobs["data"].data.fill_(1.0)
    net.forward()
    net.backward()
    torch.testing.assert_close(ip1.blobs[0].diff, ip2.blobs[0].diff)


def test_sharing_checks_shapes_unless_permissive() -> None:
    text = SHARED.replace(IP % 3 + ' bottom: "ip1"', IP % 2 + ' bottom: "ip1"')
    with pytest.raises(LayerError, match="cannot share param 'w'.*shape mismatch"):
        build(text)


def test_shared_lr_mult_must_agree() -> None:
    text = SHARED.replace('top: "ip2" param { name: "w" }', 'top: "ip2" param { name: "w" lr_mult: 2 }')
    text = text.replace('top: "ip1" param { name: "w" }', 'top: "ip1" param { name: "w" lr_mult: 1 }')
    with pytest.raises(LayerError, match="shared param 'w' has mismatched lr_mult"):
        build(text)


def test_sharer_lr_mult_applies_when_owner_has_none() -> None:
    text = SHARED.replace('top: "ip2" param { name: "w" }', 'top: "ip2" param { name: "w" lr_mult: 2 }')
    net = build(text)
    assert net.learnable_params[0].lr_mult == 2 and net.learnable_params[0].has_lr_mult


def test_share_trained_layers_with_shares_data_only() -> None:
    a, b = build(LOSS_NET), build(LOSS_NET, recaffe.TEST)
    b.share_trained_layers_with(a)
    a.layer_by_name("ip1").blobs[0].data.fill_(2.0)
    assert torch.all(b.layer_by_name("ip1").blobs[0].data == 2.0)
    a.layer_by_name("ip1").blobs[0].diff.fill_(1.0)
    assert torch.count_nonzero(b.layer_by_name("ip1").blobs[0].diff) == 0


# ------------------------------------------------------------------ weights
def test_copy_trained_layers_matches_by_name(tmp_path) -> None:
    a = build(LOSS_NET)
    path = tmp_path / "w.caffemodel"
    a.save(path)
    other = LOSS_NET.replace('name: "ip2"', 'name: "renamed"')
    recaffe.set_random_seed(4)
    b = recaffe.Net(net_param(other), recaffe.TRAIN)
    b.copy_trained_layers_from(path)
    torch.testing.assert_close(b.layer_by_name("ip1").blobs[0].data, a.layer_by_name("ip1").blobs[0].data)
    assert not torch.equal(b.layer_by_name("renamed").blobs[0].data, a.layer_by_name("ip2").blobs[0].data)


def test_copy_trained_layers_reports_shape_mismatch(tmp_path) -> None:
    a = build(LOSS_NET)
    path = tmp_path / "w.caffemodel"
    a.save(path)
    b = build(LOSS_NET.replace(IP % 4, IP % 5))
    with pytest.raises(
        LayerError, match="cannot copy param 0 weights from layer 'ip1'; shape mismatch.*rename the layer"
    ):
        b.copy_trained_layers_from(path)


def test_inference_allocates_no_diffs() -> None:
    text = SPLIT_NET.replace('name: "split"', 'name: "deploy"')
    net = build(text, recaffe.TEST)
    net.blobs["data"].data.fill_(1.0)
    net.forward()
    assert not any(blob.has_diff for blob in net.blob_list)
    assert not any(blob.has_diff for blob in net.params)


VISION_NET = """
name: "vision"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 4 dim: 9 dim: 9 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 6 kernel_size: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "norm" type: "LRN" bottom: "pool" top: "norm" }
"""


@pytest.mark.parametrize("force_backward", [False, True])
def test_layers_know_whether_backward_will_run(force_backward: bool) -> None:
    """An inference net's layers keep nothing for a backward pass (MAX indices, LRN scales)."""
    text = VISION_NET + ("force_backward: true" if force_backward else "")
    net = build(text, recaffe.TEST)
    net.blobs["data"].data.normal_(generator=torch.Generator().manual_seed(0))
    net.forward()
    assert [layer.need_backward for layer in net.layers] == [force_backward] * 4
    assert (net.layer_by_name("pool").max_idx.numel() > 0) == force_backward
    assert (net.layer_by_name("norm").scale is not None) == force_backward
    assert not any(blob.has_diff for blob in net.blob_list + net.params)
    pooled = net.blobs["pool"].data.clone()
    conv = net.blobs["conv"].data
    torch.testing.assert_close(pooled, torch.nn.functional.max_pool2d(conv, 2, 2, ceil_mode=True))
