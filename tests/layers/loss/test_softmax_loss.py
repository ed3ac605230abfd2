from __future__ import annotations

import math

import pytest
import torch

import recaffe
from recaffe.io import prototxt
from recaffe.layer import LayerError
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_case import LayerCase
from tests.layers.loss.helpers import blob_of, make_layer, normalize, random_labels

SHAPE = (2, 4, 3, 2)


def ignore_of(param: caffe_pb2.LayerParameter) -> int | None:
    return param.loss_param.ignore_label if param.loss_param.HasField("ignore_label") else None


class TestSoftmaxWithLoss(LayerCase):
    layer_type = "SoftmaxWithLoss"
    params = [
        "",
        "loss_weight: 3",
        "loss_param { ignore_label: 0 }",
        "loss_param { ignore_label: 255 normalization: FULL }",
        "loss_param { normalize: false }",
        "loss_param { normalization: BATCH_SIZE }",
        "loss_param { normalization: NONE ignore_label: 1 }",
        "softmax_param { axis: 2 }",
        "softmax_param { axis: -1 } loss_param { ignore_label: 1 }",
    ]
    check_bottoms = [0]

    def make_bottoms(self, param, generator):
        axis = param.softmax_param.axis % len(SHAPE)
        x = 3 * torch.randn(SHAPE, generator=generator, dtype=torch.float64)
        label_shape = tuple(1 if i == axis else d for i, d in enumerate(SHAPE))
        label = random_labels(label_shape, SHAPE[axis], generator)
        if ignore_of(param) is not None:
            label.view(-1)[::5] = ignore_of(param)
        return [x, label]

    def reference(self, bottoms, blobs, param):
        x, label = bottoms
        axis = param.softmax_param.axis % x.dim()
        outer, channels = math.prod(x.shape[:axis]), x.shape[axis]
        logp = torch.log_softmax(x.reshape(outer, channels, -1), dim=1)  # (outer, C, inner)
        lab = label.reshape(outer, -1).long()
        ignore = ignore_of(param)
        valid = lab != ignore if ignore is not None else torch.ones_like(lab, dtype=torch.bool)
        picked = logp.gather(1, torch.where(valid, lab, 0).unsqueeze(1)).squeeze(1)
        loss = -torch.where(valid, picked, 0).sum()
        loss = normalize(loss, param.loss_param, caffe_pb2.LossParameter.VALID,
                         outer, lab.shape[1], int(valid.sum()))
        return (loss, torch.softmax(x, axis))[: self.top_count(param)]


class TestSoftmaxWithLossProbTop(TestSoftmaxWithLoss):
    params = [
        "loss_weight: 1 loss_weight: 0",
        "loss_weight: 2 loss_weight: 0 softmax_param { axis: 2 } loss_param { ignore_label: 0 }",
    ]
    num_tops = 2
    check_tops = [0]  # the probabilities carry no gradient, as in Caffe


def scores_and_labels(std: float = 10.0) -> list[recaffe.Blob]:
    generator = torch.Generator().manual_seed(1701)
    x = std * torch.randn(10, 5, 2, 3, generator=generator)
    return [blob_of(x, torch.float32), blob_of(random_labels((10, 1, 2, 3), 5, generator), torch.float32)]


def test_ignoring_each_label_in_turn_sums_to_four_full_losses() -> None:
    bottom = scores_and_labels()
    layer, top = make_layer("SoftmaxWithLoss", "loss_param { normalize: false }", bottom)
    layer.run_forward(bottom, top)
    full = float(top[0].data)
    accumulated = 0.0
    for label in range(5):
        snippet = f"loss_param {{ normalize: false ignore_label: {label} }}"
        layer, top = make_layer("SoftmaxWithLoss", snippet, bottom)
        layer.run_forward(bottom, top)
        accumulated += float(top[0].data)
    assert accumulated == pytest.approx(4 * full, rel=1e-5)


def test_ignored_positions_get_zero_gradient() -> None:
    bottom = scores_and_labels()
    layer, top = make_layer("SoftmaxWithLoss", "loss_param { ignore_label: 0 }", bottom)
    layer.run_forward(bottom, top)
    layer.run_backward(top, [True, False], bottom)
    ignored = (bottom[1].data == 0).expand(10, 5, 2, 3)
    assert bool((bottom[0].diff[ignored] == 0).all())
    assert bool((bottom[0].diff[~ignored] != 0).all())


def test_float_labels_are_truncated_like_a_cast_to_int() -> None:
    x = blob_of([[0.5, 1.5, -1.0], [2.0, 0.0, 1.0]])
    exact, fractional = blob_of([1.0, 0.0]), blob_of([1.9, -0.7])
    losses = []
    for label in (exact, fractional):
        layer, top = make_layer("SoftmaxWithLoss", "", [x, label])
        layer.run_forward([x, label], top)
        losses.append(float(top[0].data))
    assert losses[0] == losses[1]


def test_hand_computed_loss_and_gradient() -> None:
    x, label = blob_of([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]), blob_of([2.0, 0.0])
    layer, top = make_layer("SoftmaxWithLoss", "loss_weight: 2", [x, label])
    layer.run_forward([x, label], top)
    p0 = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64).softmax(0)
    expected = (-math.log(p0[2]) - math.log(1 / 3)) / 2
    assert float(top[0].data) == pytest.approx(expected, rel=1e-12)
    layer.run_backward(top, [True, False], [x, label])
    want = torch.stack([p0 - torch.tensor([0, 0, 1.0]), torch.tensor([1 / 3 - 1, 1 / 3, 1 / 3])]) * 2 / 2
    torch.testing.assert_close(x.diff, want.double())


def test_vanishing_probability_is_floored_at_flt_min() -> None:
    x, label = blob_of([[0.0, -200.0]], torch.float32), blob_of([1.0], torch.float32)
    layer, top = make_layer("SoftmaxWithLoss", "", [x, label])
    layer.run_forward([x, label], top)
    assert float(top[0].data) == pytest.approx(-math.log(torch.finfo(torch.float32).tiny), rel=1e-6)


def test_huge_scores_do_not_overflow() -> None:
    x, label = blob_of([[1000.0, 0.0], [0.0, 1000.0]], torch.float32), blob_of([0.0, 0.0], torch.float32)
    layer, top = make_layer("SoftmaxWithLoss", "", [x, label])
    layer.run_forward([x, label], top)
    # row 0 is certain; row 1's p = exp(−1000) underflows and is floored at FLT_MIN
    assert float(top[0].data) == pytest.approx(-math.log(torch.finfo(torch.float32).tiny) / 2, rel=1e-6)


def test_prob_top_shares_the_internal_probabilities() -> None:
    bottom = scores_and_labels()
    layer, top = make_layer("SoftmaxWithLoss", "loss_weight: 1 loss_weight: 0", bottom, num_tops=2)
    layer.run_forward(bottom, top)
    assert top[1].data.data_ptr() == layer.prob.data.data_ptr()
    torch.testing.assert_close(top[1].data.sum(1), torch.ones(10, 2, 3))


def test_two_tops_need_a_loss_weight_each() -> None:
    with pytest.raises(LayerError, match="loss_weight must be unspecified or given once per top"):
        make_layer("SoftmaxWithLoss", "", scores_and_labels(), num_tops=2)


def test_label_outside_the_classes_is_an_error() -> None:
    x, label = blob_of([[0.0, 1.0], [1.0, 0.0]]), blob_of([1.0, 2.0])
    layer, top = make_layer("SoftmaxWithLoss", "", [x, label])
    with pytest.raises(LayerError, match=r"label 2 is outside \[0, 2\)"):
        layer.run_forward([x, label], top)
    label.data[1] = 255  # fine once it is the ignore label
    layer, top = make_layer("SoftmaxWithLoss", "loss_param { ignore_label: 255 }", [x, label])
    layer.run_forward([x, label], top)
    assert float(top[0].data) == pytest.approx(math.log(1 + math.e) - 1)  # −log(e / (1 + e))


def test_label_count_must_match_the_predictions() -> None:
    x, label = blob_of(torch.zeros(2, 3, 4)), blob_of(torch.zeros(2, 3))
    with pytest.raises(LayerError, match="need 8 labels, got 6"):
        make_layer("SoftmaxWithLoss", "", [x, label])


def test_labels_get_no_gradient() -> None:
    bottom = scores_and_labels()
    layer, top = make_layer("SoftmaxWithLoss", "", bottom)
    layer.run_forward(bottom, top)
    assert not layer.allow_force_backward(1)
    with pytest.raises(LayerError, match="cannot backpropagate to the label"):
        layer.run_backward(top, [True, True], bottom)


def test_force_backward_reaches_the_scores_only() -> None:
    net_param = prototxt.parse_text(
        """
        force_backward: true
        layer { name: "in" type: "Input" top: "x" top: "y"
                input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
        layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "loss" }
        """,
        caffe_pb2.NetParameter(),
    )
    net = recaffe.Net(net_param, recaffe.TRAIN)
    loss_id = [layer.name for layer in net.layers].index("loss")
    assert net.bottom_need_backward[loss_id] == [True, False]
