"""Registries: an unknown type names the closest known one."""

from __future__ import annotations

import pytest

import recaffe
from recaffe.registry import UnknownTypeError, closest


@pytest.mark.parametrize(("name", "guess"), [
    ("Relu", "ReLU"), ("Convolutoin", "Convolution"), ("softmaxwithloss", "SoftmaxWithLoss"),
    ("InnerProdcut", "InnerProduct"), ("Zorro", None),
])
def test_closest_layer_type(name: str, guess: str | None) -> None:
    assert closest(name, recaffe.LAYERS.names()) == guess


def test_unknown_type_message_suggests_the_closest() -> None:
    with pytest.raises(UnknownTypeError, match=r"Unknown layer type: 'Relu'; did you mean 'ReLU'\? \(known"):
        recaffe.LAYERS.get("Relu")
    with pytest.raises(UnknownTypeError, match=r"Unknown solver type: 'Adamm'; did you mean 'Adam'\?"):
        recaffe.SOLVERS.get("Adamm")
