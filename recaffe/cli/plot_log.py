"""``caffe plot_log CHART OUT.png LOG [LOG ...]``: chart training logs (needs matplotlib).

The chart types are those of BVLC's ``tools/extra/plot_training_log.py.example``, numbered the
same way (``--list`` prints them); ``all`` draws every one of them in one image. Each log becomes
one line, labelled with its file name. The logs are read by ``parse_log``: "accuracy" is the first
output whose name contains ``acc``, "loss" the first whose name contains ``loss``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from recaffe.cli import parse_log
from recaffe.cli.common import CliError
from recaffe.io import atomic

X_AXES = {"Iters": "NumIters", "Seconds": "Seconds"}
# (table, y label) in plot_training_log.py.example's order; each is drawn against both x axes
_Y_AXES = (("Test", "accuracy"), ("Test", "loss"), ("Train", "learning rate"), ("Train", "loss"))
CHARTS = [(table, y, x) for table, y in _Y_AXES for x in X_AXES]


def chart_title(chart: tuple[str, str, str]) -> str:
    table, y, x = chart
    return f"{table} {y}  vs. {x}"


def register(subparsers: argparse._SubParsersAction) -> None:
    listing = "\n".join(f"  {i}: {chart_title(chart)}" for i, chart in enumerate(CHARTS))
    parser = subparsers.add_parser(
        "plot_log", help="plot training logs as PNG charts (pip install recaffe[plot])",
        description=__doc__.split("\n")[0], epilog="chart types:\n" + listing,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chart", nargs="?", help=f"chart type 0-{len(CHARTS) - 1}, or 'all'")
    parser.add_argument("png", nargs="?", help="the image to write")
    parser.add_argument("logs", nargs="*", help="training logs (caffe train ... 2>&1 | tee LOG)")
    parser.add_argument("--list", action="store_true", help="print the chart types and exit")
    parser.set_defaults(run=run, listing=listing)


def run(args: argparse.Namespace) -> int:
    if args.list:
        print(args.listing)
        return 0
    if args.chart is None or args.png is None or not args.logs:
        raise CliError("usage: plot_log CHART OUT.png LOG [LOG ...] (see plot_log --list)")
    charts = _charts(args.chart)
    if not args.png.endswith(".png"):
        raise CliError(f"the output must be a .png file, got {args.png!r}")
    tables = {path: _read(path) for path in args.logs}
    plot(charts, tables, args.png)
    return 0


def _charts(value: str) -> list[tuple[str, str, str]]:
    if value == "all":
        return CHARTS
    if value.isdigit() and int(value) < len(CHARTS):
        return [CHARTS[int(value)]]
    raise CliError(f"{value!r} is not a chart type: use 0-{len(CHARTS) - 1} or 'all' (plot_log --list)")


def _read(path: str) -> dict[str, list[parse_log.Row]]:
    train, test = parse_log.read_log(path)
    return {"Train": train, "Test": test}


def column(rows: Sequence[parse_log.Row], y: str) -> str | None:
    """The CSV column a chart's y label refers to, or None when the rows have none."""
    if y == "learning rate":
        return "LearningRate" if rows else None
    key = "acc" if y == "accuracy" else "loss"
    outputs = list(rows[0])[3:] if rows else []  # after NumIters, Seconds, LearningRate
    return next((name for name in outputs if key in name.lower()), None)


def plot(charts: Sequence[tuple[str, str, str]], tables: dict[str, dict[str, list[parse_log.Row]]],
         png: str) -> None:
    """Draw ``charts`` (one panel each) from every log's tables into ``png``."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise CliError("plot_log needs matplotlib: pip install recaffe[plot]") from None
    columns = 1 if len(charts) == 1 else 2
    rows = (len(charts) + columns - 1) // columns
    figure = Figure(figsize=(6.4 * columns, 4.8 * rows), layout="constrained")
    for index, chart in enumerate(charts):
        axes = figure.add_subplot(rows, columns, index + 1)
        table, y, x = chart
        drawn = 0
        for path, log_tables in tables.items():
            data = log_tables[table]
            name = column(data, y)
            if name is None:
                continue
            label = os.path.basename(path).removesuffix(".log")
            axes.plot([r[X_AXES[x]] for r in data], [r[name] for r in data], label=label,
                      marker="o" if len(data) <= 50 else None, markersize=3, linewidth=0.9)
            drawn += 1
        if drawn:
            axes.legend(loc="lower right" if y == "accuracy" else "upper right")
        elif len(charts) == 1:
            raise CliError(f"no log has a {table.lower()} {y} column to plot ({', '.join(tables)})")
        else:
            axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
        axes.set_title(chart_title(chart))
        axes.set_xlabel(x)
        axes.set_ylabel(f"{table} {y}")
        axes.grid(True, alpha=0.3)
    with atomic.replace(png, "chart") as temp:
        figure.savefig(temp, dpi=100, format=os.path.splitext(png)[1][1:] or "png")
