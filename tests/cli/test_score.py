"""``caffe test``: per-batch outputs, their means, the loss line, and its errors."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from recaffe.net import TEST, Net
from tests.cli import nets


@pytest.fixture
def model(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    nets.training_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    Net("net.prototxt", TEST).save("weights.caffemodel")
    return tmp_path / "net.prototxt"


def test_batches_means_and_loss(cli, model: pathlib.Path) -> None:
    result = cli("test", "-model", model, "-weights", "weights.caffemodel", "-iterations", "3")
    assert result.status == 0, result.err
    messages = result.messages
    assert "Use CPU." in messages and "Running for 3 iterations." in messages
    batches = [m for m in messages if m.startswith("Batch ")]
    assert [m.split(" = ")[0] for m in batches] == [
        f"Batch {i}, {name}" for i in range(3) for name in ("accuracy", "loss")]
    values = {name: np.float32([float(m.split(" = ")[1]) for m in batches if f", {name} =" in m])
              for name in ("accuracy", "loss")}
    # the test LMDB holds 8 records and batches are 4: batch 2 wraps around to batch 0
    assert values["accuracy"][2] == values["accuracy"][0] and values["loss"][2] == values["loss"][0]
    tail = messages[messages.index(batches[-1]) + 1:]
    assert len(tail) == 3 and tail[0].startswith("Loss: ")
    loss_mean, accuracy_mean = (float(values[k].sum(dtype=np.float32) / 3) for k in ("loss", "accuracy"))
    assert float(tail[0].split(": ")[1]) == pytest.approx(loss_mean, rel=1e-5)
    name, rest = tail[1].split(" = ", 1)
    assert name == "accuracy" and float(rest) == pytest.approx(accuracy_mean, rel=1e-5)
    name, rest = tail[2].split(" = ", 1)
    value, suffix = rest.split(" ", 1)
    assert name == "loss" and float(value) == pytest.approx(loss_mean, rel=1e-5)
    assert suffix == f"(* 1 = {value} loss)"


def test_level_and_stage_select_layers(cli, model: pathlib.Path) -> None:
    text = model.read_text()
    rule = 'include { stage: "monitor" min_level: 2 }'
    model.write_text(text.replace('include { phase: TRAIN stage: "monitor" }', rule))
    common = ("test", "-model", model, "-weights", "weights.caffemodel", "-iterations", "1")
    for flags, included in ((), False), (("-stage", "monitor"), False), (("-level", "2"), False), \
            (("-stage", "other,monitor", "-level", "2"), True):
        result = cli(*common, *flags)
        assert result.status == 0, result.err
        assert any(m.startswith("Batch 0, train_accuracy = ") for m in result.messages) == included, flags


def test_errors(cli, model: pathlib.Path) -> None:
    assert cli("test", "-weights", "weights.caffemodel").fatal() == "Need a model definition to score."
    assert cli("test", "-model", model).fatal() == "Need model weights to score."
    missing = cli("test", "-model", model, "-weights", "missing.caffemodel")
    assert missing.status == 1 and "missing.caffemodel" in missing.fatal()
    zero = cli("test", "-model", model, "-weights", "weights.caffemodel", "-iterations", "0")
    assert zero.fatal() == "-iterations must be at least 1, got 0"


def test_progress_bar(cli, model: pathlib.Path) -> None:
    result = cli("test", "-model", model, "-weights", "weights.caffemodel", "-iterations=3", "--progress=on")
    assert result.status == 0, result.err
    assert "3/3" in result.err
    assert sum(m.startswith("Batch ") for m in result.messages) == 6  # whole log lines above the bar


def test_optimize_scores_the_same(cli, model: pathlib.Path) -> None:
    common = ("test", "-model", model, "-weights", "weights.caffemodel", "-iterations", "2")
    plain, fused = cli(*common), cli(*common, "-optimize")
    assert plain.status == 0 and fused.status == 0, fused.err
    lines = [[m for m in result.messages if m.startswith(("Batch ", "Loss: "))] for result in (plain, fused)]
    assert len(lines[0]) == len(lines[1]) == 5
    for a, b in zip(*lines):
        assert a.rsplit(" ", 1)[0] == b.rsplit(" ", 1)[0]
        assert float(a.rsplit(" ", 1)[1]) == pytest.approx(float(b.rsplit(" ", 1)[1]), rel=1e-5)
