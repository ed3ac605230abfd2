"""SegNet's training-net layers against references from the fork's C++: SoftmaxWithLoss with class
weighting (softmax_loss_layer.cpp) and Accuracy with its per-class top (accuracy_layer.cpp)."""

from __future__ import annotations

import pytest
import torch

from recaffe import forks
from recaffe.io import prototxt
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS
from recaffe.testing.layer_case import LayerCase, Tensors
from tests.forks.segnet.test_layers import build

SEGNET = forks.get_dialect("segnet")
WEIGHTS = [0.25, 1.5, 4.0, 0.75]
SHAPE = (2, 4, 3, 5)


def labels(generator: torch.Generator, ignore: int | None) -> torch.Tensor:
    label = torch.randint(0, SHAPE[1], (SHAPE[0], 1, *SHAPE[2:]), generator=generator).double()
    if ignore is not None:
        label.view(-1)[::4] = ignore
    return label


class TestSoftmaxWithLossClassWeighting(LayerCase):
    layer_type = "SoftmaxWithLoss"
    dialect = "segnet"
    weighting = " ".join(f"class_weighting: {w}" for w in WEIGHTS)
    params = [
        f"loss_param {{ weight_by_label_freqs: true {weighting} }}",
        f"loss_param {{ weight_by_label_freqs: true ignore_label: 3 {weighting} }}",
        f"loss_param {{ weight_by_label_freqs: true normalize: false {weighting} }} loss_weight: 2",
        "loss_param { ignore_label: 1 }",  # unweighted: BVLC's
    ]
    check_bottoms = [0]

    def make_bottoms(self, param: caffe_pb2.LayerParameter, generator: torch.Generator) -> list[torch.Tensor]:
        ignore = param.loss_param.ignore_label if param.loss_param.HasField("ignore_label") else None
        return [3 * torch.randn(SHAPE, generator=generator, dtype=torch.float64), labels(generator, ignore)]

    def reference(self, bottoms: Tensors, blobs: Tensors, param: caffe_pb2.LayerParameter) -> Tensors:
        x, label = bottoms
        p = SEGNET.fork_param(param).loss_param
        logp = torch.log_softmax(x, dim=1)
        lab = label.long()
        ignore = param.loss_param.ignore_label if param.loss_param.HasField("ignore_label") else -1
        valid = lab != ignore
        picked = logp.gather(1, torch.where(valid, lab, 0)).squeeze(1)
        w = torch.tensor(WEIGHTS, dtype=x.dtype)[torch.where(valid, lab, 0)].squeeze(1) if (
            p.weight_by_label_freqs) else torch.ones_like(picked)
        loss = -(torch.where(valid.squeeze(1), picked * w, 0)).sum()
        per_batch = param.loss_param.HasField("normalize") and not param.loss_param.normalize  # fork: true
        n = x.shape[0] if per_batch else valid.sum()
        return (loss / n,)


def test_class_weighting_needs_one_weight_per_class() -> None:
    x, label = torch.zeros(SHAPE), labels(torch.Generator().manual_seed(0), None).float()
    with pytest.raises(Exception, match="class_weighting has 2 values for 4 classes"):
        build("SoftmaxWithLoss",
              "loss_param { weight_by_label_freqs: true class_weighting: 1 class_weighting: 2 }", [x, label])


def test_weight_by_label_freqs_is_field_3_where_bvlc_has_normalization() -> None:
    fd = SEGNET.pb2.LossParameter.DESCRIPTOR.fields_by_number[3]
    assert (fd.name, caffe_pb2.LossParameter.DESCRIPTOR.fields_by_number[3].name) == (
        "weight_by_label_freqs", "normalization")


def accuracy_tops(scores: torch.Tensor, label: torch.Tensor, snippet: str = "") -> tuple[float, torch.Tensor]:
    _, _, top = build("Accuracy", snippet, [scores, label], tops=2)
    return float(top[0].data), top[1].data


def test_accuracy_per_class_top_is_the_forks() -> None:
    scores = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 5.0], [0.0, 4.0, 1.0]])
    label = torch.tensor([0.0, 2.0, 2.0, 1.0])
    accuracy, per_class = accuracy_tops(scores, label)
    assert accuracy == 0.75 and per_class.shape == (3, 1, 1, 1)
    assert per_class.view(-1).tolist() == [1.0, 1.0, 0.5]
    _, per_class = accuracy_tops(scores, torch.tensor([0.0, 0.0, 2.0, 2.0]))
    assert per_class.view(-1).tolist() == [0.5, 1.0, 0.5]  # class 1 absent: 1, as the fork (BVLC: 0)
    accuracy, _ = accuracy_tops(scores, torch.tensor([0.0, 2.0, 2.0, 1.0]),
                                "accuracy_param { ignore_label: 0 }")
    assert accuracy == pytest.approx(2 / 3)


def test_accuracy_counts_unknown_labels_as_misses_as_the_forks_release_build() -> None:
    scores = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 5.0], [0.0, 4.0, 1.0]])
    accuracy, per_class = accuracy_tops(scores, torch.tensor([0.0, 3.0, 2.0, 3.0]))  # 3: CamVid's void
    assert accuracy == 0.5 and per_class.view(-1).tolist() == [1.0, 1.0, 1.0]


def test_accuracy_ties_go_to_the_larger_class_index_as_the_forks_partial_sort() -> None:
    scores = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    accuracy, per_class = accuracy_tops(scores, torch.tensor([1.0, 0.0]))
    assert accuracy == 0.5 and per_class.view(-1).tolist() == [0.0, 1.0, 1.0]
    accuracy, _ = accuracy_tops(scores, torch.tensor([0.0, 0.0]), "accuracy_param { top_k: 2 }")
    assert accuracy == 1.0


def test_segnet_train_layers_are_the_dialects() -> None:
    assert LAYERS.get("Accuracy", "segnet") is not LAYERS.get("Accuracy")
    text = 'name: "l" type: "SoftmaxWithLoss" loss_param { weight_by_label_freqs: true class_weighting: 2 }'
    lowered = SEGNET.lower_layer(prototxt.parse_text(text, SEGNET.layer_parameter()))
    assert not lowered.loss_param.HasField("normalization")  # field 3 travels as the fork's, not BVLC's
    assert list(SEGNET.fork_param(lowered).loss_param.class_weighting) == [2.0]
