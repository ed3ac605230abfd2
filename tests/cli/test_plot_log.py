"""``caffe plot_log``: PNG charts of a ``recaffe train`` log (skipped without matplotlib)."""

from __future__ import annotations

import builtins
import pathlib

import pytest
from PIL import Image

from recaffe.cli import plot_log


def test_chart_types_follow_bvlcs_example() -> None:
    assert [plot_log.chart_title(c) for c in plot_log.CHARTS] == [
        "Test accuracy  vs. Iters", "Test accuracy  vs. Seconds", "Test loss  vs. Iters",
        "Test loss  vs. Seconds", "Train learning rate  vs. Iters", "Train learning rate  vs. Seconds",
        "Train loss  vs. Iters", "Train loss  vs. Seconds",
    ]


def test_list(cli) -> None:
    result = cli("plot_log", "--list")
    assert result.status == 0 and "  6: Train loss  vs. Iters" in result.out


@pytest.mark.parametrize("chart", ["0", "6", "all"])
def test_writes_a_png(cli, train_log: pathlib.Path, tmp_path: pathlib.Path, chart: str) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / f"chart_{chart}.png"
    result = cli("plot_log", chart, png, train_log)
    assert result.status == 0, result.err
    with Image.open(png) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert (width, height) == ((640, 480) if chart != "all" else (1280, 1920))
        # something was drawn: more than a handful of colours
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or []) > 20


def test_two_logs_on_one_chart(cli, train_log: pathlib.Path, tmp_path: pathlib.Path) -> None:
    pytest.importorskip("matplotlib")
    other = tmp_path / "other.log"
    other.write_text(train_log.read_text())
    assert cli("plot_log", "2", tmp_path / "both.png", train_log, other).status == 0


def test_bad_arguments(cli, train_log: pathlib.Path, tmp_path: pathlib.Path) -> None:
    assert "is not a chart type" in cli("plot_log", "9", tmp_path / "x.png", train_log).fatal()
    assert "must be a .png file" in cli("plot_log", "0", tmp_path / "x.jpg", train_log).fatal()
    assert "usage: plot_log" in cli("plot_log", "0").fatal()


def test_missing_matplotlib_names_the_extra(cli, train_log, tmp_path, monkeypatch) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    result = cli("plot_log", "0", tmp_path / "x.png", train_log)
    assert result.status == 1
    assert result.fatal() == "plot_log needs matplotlib: pip install recaffe[plot]"
