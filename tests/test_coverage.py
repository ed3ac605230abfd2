"""Every registered unit has a test: layers through the LayerCase harness (or a named test file)."""

from __future__ import annotations

import importlib
import pkgutil

import tests.layers
from recaffe.registry import LAYERS, LR_POLICIES, SOLVERS
from recaffe.testing.layer_case import LayerCase
from tests.conftest import TESTS

# Types whose behaviour the harness cannot drive (they read files or produce data); each maps to
# the test module that covers it, which must exist and mention the type.
TESTED_ELSEWHERE: dict[str, str] = {
    "Input": "tests/test_net.py",
    "Data": "tests/layers/data/test_data.py",
    "ImageData": "tests/layers/data/test_image_data.py",
    "HDF5Data": "tests/layers/data/test_hdf5_data.py",
    "HDF5Output": "tests/layers/data/test_hdf5_output.py",
    "MemoryData": "tests/layers/data/test_memory_data.py",
    "WindowData": "tests/layers/data/test_window_data.py",
}


def all_layer_cases() -> list[type[LayerCase]]:
    for info in pkgutil.walk_packages(tests.layers.__path__, "tests.layers."):
        importlib.import_module(info.name)
    found, todo = [], list(LayerCase.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [cls for cls in found if cls.layer_type]


def test_every_layer_type_has_a_test() -> None:
    covered = {cls.layer_type for cls in all_layer_cases()}
    for layer_type, path in TESTED_ELSEWHERE.items():
        text = (TESTS.parent / path).read_text()
        assert layer_type in text, f"{path} does not test {layer_type}"
        covered.add(layer_type)
    missing = sorted(set(LAYERS.names()) - covered)
    assert not missing, f"registered layer types without a test: {missing}"


def test_every_solver_and_lr_policy_has_a_test() -> None:
    from tests.solvers import test_least_squares, test_lr_policies, test_snapshot

    assert set(SOLVERS.names()) == set(test_least_squares.SOLVER_TYPES)
    assert set(SOLVERS.names()) == {kind for kind, _, _ in test_snapshot.SOLVERS}
    assert set(LR_POLICIES.names()) == set(test_lr_policies.FORMULAS)
