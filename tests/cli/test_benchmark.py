"""``caffe time``: the warm-up pass, per-iteration lines, the per-layer table and the totals."""

from __future__ import annotations

import pathlib
import re

import pytest

NUMBER = r"[0-9.e+-]+"


def test_table_format(cli, tiny_net: pathlib.Path) -> None:
    result = cli("time", "-model", tiny_net, "-iterations", "4")
    assert result.status == 0, result.err
    messages = result.messages
    start = messages.index("Performing Forward")
    assert re.fullmatch(f"Initial loss: {NUMBER}", messages[start + 1])
    assert messages[start + 2:start + 5] == ["Performing Backward", "*** Benchmark begins ***",
                                             "Testing for 4 iterations."]
    body = messages[start + 5:]
    for j in range(4):
        assert re.fullmatch(f"Iteration: {j + 1} forward-backward time: {NUMBER} ms.", body[j])
    assert body[4] == "Average time per layer: "
    layers = ["data", "ip1", "relu1", "ip2", "loss"]  # TRAIN phase: no accuracy, so no label split
    table = body[5:5 + 2 * len(layers)]
    for i, name in enumerate(layers):
        for k, direction in enumerate(("forward", "backward")):
            line = table[2 * i + k]
            assert re.fullmatch(f" *{name}\t{direction}: {NUMBER} ms.", line), line
            assert len(line.split("\t")[0]) == max(10, len(name))  # setw(10), right-aligned
    totals = body[5 + 2 * len(layers):]
    for label, line in zip(("Average Forward pass", "Average Backward pass", "Average Forward-Backward",
                            "Total Time"), totals):
        assert re.fullmatch(f"{label}: {NUMBER} ms.", line), line
    assert totals[4] == "*** Benchmark ends ***"
    total = float(totals[3].split(": ")[1].split()[0])
    assert float(totals[2].split(": ")[1].split()[0]) == pytest.approx(total / 4, rel=1e-4)


def test_phase_test_and_errors(cli, tiny_net: pathlib.Path) -> None:
    result = cli("time", "--model", tiny_net, "--phase", "TEST", "--iterations", "1")
    assert result.status == 0, result.err
    assert any(m.startswith("  accuracy\tforward: ") for m in result.messages)
    assert cli("time").fatal() == "Need a model definition to time."
    bad_phase = cli("time", "-model", tiny_net, "-phase", "VAL")
    assert bad_phase.fatal() == 'phase must be "TRAIN" or "TEST", got \'VAL\''


def test_optimize_times_whole_deploy_passes(cli, tiny_net: pathlib.Path) -> None:
    result = cli("time", "-model", tiny_net, "-phase", "TEST", "-optimize", "-iterations", "3")
    assert result.status == 0, result.err
    body = result.messages[result.messages.index("Testing for 3 iterations.") + 1:]
    for j in range(3):
        assert re.fullmatch(f"Iteration: {j + 1} forward time: {NUMBER} ms.", body[j])
    assert re.fullmatch(f"Average Forward pass: {NUMBER} ms.", body[3])
    assert re.fullmatch(f"Total Time: {NUMBER} ms.", body[4])
    assert cli("time", "-model", tiny_net, "-optimize").fatal() == (
        "-optimize times deploy mode, which runs TEST-phase nets: add -phase TEST")
