from __future__ import annotations

import math

import pytest
import torch

from recaffe.layer import LayerError
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_case import LayerCase
from tests.layers.loss.helpers import blob_of, make_layer, random_labels

SHAPE = (8, 5, 3)


def ignore_of(param) -> int | None:
    p = param.accuracy_param
    return p.ignore_label if p.HasField("ignore_label") else None


class TestAccuracy(LayerCase):
    layer_type = "Accuracy"
    params = [
        "",
        "accuracy_param { top_k: 3 }",
        "accuracy_param { ignore_label: -1 }",
        "accuracy_param { axis: -1 top_k: 2 }",
        "accuracy_param { top_k: 5 ignore_label: 4 }",
    ]
    phase = caffe_pb2.TEST
    has_backward = False

    def make_bottoms(self, param, generator):
        axis = param.accuracy_param.axis % len(SHAPE)
        scores = torch.randn(SHAPE, generator=generator, dtype=torch.float64)
        label = random_labels(SHAPE[:axis] + SHAPE[axis + 1:], SHAPE[axis], generator)
        if ignore_of(param) is not None:
            label.view(-1)[::3] = ignore_of(param)
        return [scores, label]

    def reference(self, bottoms, blobs, param):
        """Brute force: an item is right when its label is among the top_k scores (no ties here)."""
        scores, label = bottoms
        axis = param.accuracy_param.axis % scores.dim()
        outer, channels = math.prod(scores.shape[:axis]), scores.shape[axis]
        scores = scores.reshape(outer, channels, -1).transpose(1, 2).reshape(-1, channels)
        label = label.reshape(-1).long()
        ignore = ignore_of(param)
        valid = label != ignore if ignore is not None else torch.ones_like(label, dtype=torch.bool)
        best = scores.topk(param.accuracy_param.top_k, dim=1).indices
        right = (best == label.unsqueeze(1)).any(1) & valid
        accuracy = right.sum() / valid.sum() if valid.any() else torch.tensor(0.0)
        tops = [accuracy.double()]
        if self.top_count(param) > 1:
            per_class = [right[label == c].sum() / max(int((valid & (label == c)).sum()), 1)
                         for c in range(channels)]
            tops.append(torch.stack(per_class).double())
        return tops


class TestAccuracyPerClass(TestAccuracy):
    params = ["", "accuracy_param { ignore_label: -1 }", "accuracy_param { top_k: 2 axis: 2 }"]
    num_tops = 2


def test_ties_count_against_the_label() -> None:
    scores, label = blob_of([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0]]), blob_of([0.0, 2.0])
    for top_k, accuracy in ((1, 0.0), (2, 1.0)):
        layer, top = make_layer("Accuracy", f"accuracy_param {{ top_k: {top_k} }}", [scores, label])
        layer.run_forward([scores, label], top)
        assert float(top[0].data) == accuracy


def test_per_class_accuracy_by_hand() -> None:
    scores = blob_of([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.7, 0.3, 0.0], [0.1, 0.0, 0.9]])
    label = blob_of([0.0, 0.0, 0.0, 1.0])
    layer, top = make_layer("Accuracy", "", [scores, label], num_tops=2)
    layer.run_forward([scores, label], top)
    assert float(top[0].data) == pytest.approx(0.5)
    torch.testing.assert_close(top[1].data, torch.tensor([2 / 3, 0.0, 0.0], dtype=torch.float64))
    assert top[0].shape == () and top[1].shape == (3,)


def test_all_labels_ignored_gives_zero() -> None:
    scores, label = blob_of(torch.randn(3, 4)), blob_of([-1.0, -1.0, -1.0])
    layer, top = make_layer("Accuracy", "accuracy_param { ignore_label: -1 }", [scores, label], num_tops=2)
    layer.run_forward([scores, label], top)
    assert float(top[0].data) == 0.0 and bool((top[1].data == 0).all())


def test_top_k_above_the_classes_is_an_error() -> None:
    with pytest.raises(LayerError, match="top_k must be at most the number of classes"):
        make_layer("Accuracy", "accuracy_param { top_k: 5 }", [blob_of(torch.zeros(2, 4)), blob_of([0.0, 1])])


def test_label_count_must_match_the_predictions() -> None:
    with pytest.raises(LayerError, match="need 6 labels, got 2"):
        make_layer("Accuracy", "", [blob_of(torch.zeros(2, 2, 3)), blob_of([0.0, 1.0])])


def test_backward_is_refused() -> None:
    bottom = [blob_of(torch.randn(2, 3)), blob_of([0.0, 1.0])]
    layer, top = make_layer("Accuracy", "", bottom)
    layer.run_forward(bottom, top)
    with pytest.raises(LayerError, match="cannot propagate gradients"):
        layer.run_backward(top, [True, False], bottom)
    layer.run_backward(top, [False, False], bottom)  # nothing asked, nothing done
