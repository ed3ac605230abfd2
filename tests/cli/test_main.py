"""The command line's own behaviour: a misspelt flag gets the subcommand's usage and a suggestion."""

from __future__ import annotations

import pytest

from recaffe.cli.main import main


@pytest.mark.parametrize(("typed", "suggestion"), [
    (["-solvr", "s.prototxt"], "-solvr: did you mean -solver?"),
    (["--sovler=s.prototxt"], "--sovler: did you mean --solver?"),
    (["-weigths", "w.caffemodel"], "-weigths: did you mean -weights?"),
])
def test_a_misspelt_flag_prints_the_subcommands_usage_and_the_closest_flag(capsys, typed, suggestion) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *typed])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: recaffe train ")
    assert f"recaffe train: error: unrecognized arguments: {' '.join(typed)}" in err
    assert suggestion in err


def test_an_unknown_flag_without_a_close_one_gets_no_suggestion(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["test", "-xyzzy"])
    err = capsys.readouterr().err
    assert "recaffe test: error: unrecognized arguments: -xyzzy" in err and "did you mean" not in err
