"""Per-layer tables in the manner of ``recaffe time`` (which the timing itself reuses)."""

from __future__ import annotations

from recaffe.cli.benchmark import benchmark
from recaffe.net import Net


def layer_table(net: Net, iterations: int, backward: bool, title: str) -> str:
    """``recaffe time``'s per-layer averages as a markdown table (one untimed pass first)."""
    net.forward()
    if backward:
        net.backward()
    forward, backward_ms, _, (forward_total, backward_total) = benchmark(net, iterations, backward)
    per = 1.0 / iterations
    total = (forward_total + backward_total) or 1.0
    lines = [f"**{title}**: forward {forward_total * per:.2f} ms"
             + (f", backward {backward_total * per:.2f} ms" if backward else "") + " per pass", "",
             "| layer | type | forward ms | " + ("backward ms | " if backward else "") + "share |",
             "|---|---|---:|" + ("---:|" if backward else "") + "---:|"]
    for name, layer, fwd, bwd in zip(net.layer_names, net.layers, forward, backward_ms):
        cells = [name, layer.type, f"{fwd * per:.3f}"] + ([f"{bwd * per:.3f}"] if backward else [])
        cells.append(f"{100.0 * (fwd + bwd) / total:.1f}%")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
