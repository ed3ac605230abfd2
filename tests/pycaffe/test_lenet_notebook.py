"""The notebook-style example examples/pycaffe/lenet_notebook.py trains LeNet well above chance."""

from __future__ import annotations

import runpy

import pytest

from tests.conftest import TESTS

pytest.importorskip("sklearn")


@pytest.mark.slow
def test_lenet_notebook_learns_the_digits(capsys) -> None:
    example = runpy.run_path(str(TESTS.parent / "examples" / "pycaffe" / "lenet_notebook.py"))
    accuracy = example["main"](iterations=100, batch_size=32)  # about 2 epochs of the 1500 digits
    assert accuracy > 0.85  # chance is 0.1
    assert "test accuracy" in capsys.readouterr().out
