"""The summary plots of `twin sweep`: each asserted metric against each swept parameter.

- A grid parameter: the metric's mean over the seeds at each value, with their min-max as a
  band, one line per combination of the other grid parameters.
- A random parameter: one dot per run (drawn value, metric), coloured by the grid point.
- Nothing swept (seeds only, a Monte Carlo over the scenario's tolerances): a histogram of the
  metric over the seeds.

The scenario's assertion bounds on the metric are drawn as dashed lines. Drawn on Agg-backed
figures (never pyplot), so a notebook's backend is left alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twin.observe.plots import new_figure, save_figure

__all__ = ["plot_sweep"]

_HEIGHT_IN = 4.0
Row = dict[str, Any]
Bounds = dict[str, list[tuple[str, float]]]
"""Per metric, the (operator, bound) of each assertion on it."""


def _bounds(ax: Any, bounds: list[tuple[str, float]], vertical: bool = False) -> None:
    for op, bound in bounds:
        line = ax.axvline if vertical else ax.axhline
        line(bound, color="red", linestyle="--", linewidth=1, label=f"assertion {op} {bound:g}")


def _finish(fig: Any, ax: Any, title: str, legend: bool) -> Any:
    ax.set_title(title, fontsize="medium")
    if legend:
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _grid_figure(
    metric: str,
    param: str,
    values: Sequence[Any],
    others: Sequence[str],
    rows: Sequence[Row],
    bounds: list[tuple[str, float]],
) -> Any:
    fig = new_figure(_HEIGHT_IN)
    ax = fig.add_subplot(1, 1, 1)
    numeric_x = all(_number(v) is not None for v in values)
    xs = [float(v) for v in values] if numeric_x else list(range(len(values)))
    groups: dict[tuple[str, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(_text(row.get(p)) for p in others), []).append(row)
    drawn = False
    for label, group in groups.items():
        mean, low, high = [], [], []
        for value in values:
            ys = [
                y
                for r in group
                if _text(r.get(param)) == _text(value) and (y := _number(r.get(metric))) is not None
            ]
            mean.append(sum(ys) / len(ys) if ys else math.nan)
            low.append(min(ys) if ys else math.nan)
            high.append(max(ys) if ys else math.nan)
        name = ", ".join(f"{p}={v}" for p, v in zip(others, label, strict=True)) or "mean"
        ax.plot(xs, mean, marker="o", label=name)
        ax.fill_between(xs, low, high, alpha=0.2)
        drawn = drawn or any(not math.isnan(m) for m in mean)
    if not numeric_x:
        ax.set_xticks(xs, [_text(v) for v in values])
    ax.set_xlabel(param)
    ax.set_ylabel(metric)
    _bounds(ax, bounds)
    title = "mean over the seeds, min-max shaded" if drawn else f"{metric}: no data"
    return _finish(fig, ax, title, len(groups) > 1 or bool(bounds))


def _scatter_figure(
    metric: str, param: str, grid_params: Sequence[str], rows: Sequence[Row], bounds: list[tuple[str, float]]
) -> Any:
    fig = new_figure(_HEIGHT_IN)
    ax = fig.add_subplot(1, 1, 1)
    groups: dict[tuple[str, ...], list[tuple[float, float]]] = {}
    for row in rows:
        x, y = _number(row.get(param)), _number(row.get(metric))
        if x is not None and y is not None:
            groups.setdefault(tuple(_text(row.get(p)) for p in grid_params), []).append((x, y))
    for label, points in groups.items():
        name = ", ".join(f"{p}={v}" for p, v in zip(grid_params, label, strict=True)) or "runs"
        ax.plot([p[0] for p in points], [p[1] for p in points], "o", alpha=0.7, label=name)
    ax.set_xlabel(f"{param} (drawn)")
    ax.set_ylabel(metric)
    _bounds(ax, bounds)
    title = "one dot per run" if groups else f"{metric}: no data"
    return _finish(fig, ax, title, len(groups) > 1 or bool(bounds))


def _histogram_figure(metric: str, rows: Sequence[Row], bounds: list[tuple[str, float]]) -> Any:
    fig = new_figure(_HEIGHT_IN)
    ax = fig.add_subplot(1, 1, 1)
    ys = [y for r in rows if (y := _number(r.get(metric))) is not None]
    if ys:
        ax.hist(ys, bins=max(5, min(30, int(math.sqrt(len(ys))) + 1)))
        mean = sum(ys) / len(ys)
        ax.axvline(mean, color="black", linestyle="--", label=f"mean {mean:.4g}")
    _bounds(ax, bounds, vertical=True)
    ax.set_xlabel(metric)
    ax.set_ylabel("runs")
    return _finish(fig, ax, f"over {len(ys)} seeds" if ys else f"{metric}: no data", bool(ys or bounds))


def plot_sweep(
    out: Path,
    grid: Sequence[tuple[str, Sequence[Any]]],
    random_params: Sequence[str],
    metrics: Sequence[str],
    rows: Sequence[Row],
    bounds: Bounds | None = None,
) -> list[Path]:
    """Write DIR/<metric>_vs_<param>.png for every metric and swept parameter (DIR/<metric>_hist.png
    when nothing is swept); return the paths."""
    if not rows:
        return []
    grid_params = [p for p, _ in grid]
    images = []
    for metric in metrics:
        lines = (bounds or {}).get(metric, [])
        figures: list[tuple[str, Any]] = []
        for index, (param, values) in enumerate(grid):
            others = [p for i, p in enumerate(grid_params) if i != index]
            figures.append((param, _grid_figure(metric, param, values, others, rows, lines)))
        for param in random_params:
            figures.append((param, _scatter_figure(metric, param, grid_params, rows, lines)))
        if not figures:
            histogram = _histogram_figure(metric, rows, lines)
            images.append(save_figure(histogram, out / f"{_safe_name(metric)}_hist.png"))
        for param, fig in figures:
            images.append(save_figure(fig, out / f"{_safe_name(metric)}_vs_{_safe_name(param)}.png"))
    return images
