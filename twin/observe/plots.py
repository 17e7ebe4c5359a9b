"""PNG plots of a run: joint tracking, tracking error and latency distributions.

Figures are built with :class:`matplotlib.figure.Figure` and rendered through
:class:`matplotlib.backends.backend_agg.FigureCanvasAgg` directly: pyplot is never
used, so no global backend is selected or changed and the functions work headless
and inside notebooks alike. matplotlib is imported inside the functions to keep
``import twin`` fast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from twin.observe.files import atomic_file
from twin.observe.telemetry import Telemetry

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "DPI",
    "new_figure",
    "plot_breakers",
    "plot_latency",
    "plot_tracking",
    "plot_tracking_error",
    "save_figure",
    "thin",
]

DPI = 100
"""Resolution of every PNG written here (dots per inch)."""

_WIDTH_IN = 8.0
_HEIGHT_PER_JOINT_IN = 2.2
_MIN_HEIGHT_IN = 3.0


def new_figure(height_in: float) -> Figure:
    """A fresh Agg-backed figure ``8 in`` wide and ``height_in`` tall."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(_WIDTH_IN, max(_MIN_HEIGHT_IN, height_in)), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as PNG at :data:`DPI` without the software tag; return ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:  # a process killed while drawing leaves no half-written PNG
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    return path


def _no_data(fig: Figure, message: str) -> None:
    """Put ``message`` in the middle of an empty axes."""
    ax = fig.add_subplot(1, 1, 1)
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=14, transform=ax.transAxes)


MAX_POINTS = 20_000
"""Samples drawn per line at most: a long run's plot is thinned (every k-th sample) to this."""


def thin(*arrays: np.ndarray) -> list[np.ndarray]:
    """Every k-th sample of arrays of equal length, so that at most MAX_POINTS are drawn."""
    step = max(1, -(-len(arrays[0]) // MAX_POINTS))
    return [a[::step] for a in arrays]


def _thinned(tel: Telemetry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t, goal, actual = thin(*tel.arrays())
    return t, goal, actual


def plot_tracking(tel: Telemetry, path: Path, title: str = "") -> Path:
    """Plot goal (dashed) and actual (solid) position per joint, in degrees, against time (s).

    One subplot per joint with a shared time axis. Returns ``path``.
    """
    t, goal, actual = _thinned(tel)
    n_joints = len(tel.joints)
    fig = new_figure(_HEIGHT_PER_JOINT_IN * n_joints)
    if len(t) == 0:
        _no_data(fig, "no samples")
    else:
        goal_deg = np.degrees(goal)
        actual_deg = np.degrees(actual)
        axes = fig.subplots(n_joints, 1, sharex=True, squeeze=False)[:, 0]
        for j, (ax, name) in enumerate(zip(axes, tel.joints, strict=True)):
            ax.plot(t, goal_deg[:, j], linestyle="--", linewidth=1.2, color="tab:blue", label="goal")
            ax.plot(
                t,
                actual_deg[:, j],
                linestyle="-",
                linewidth=1.2,
                color="tab:orange",
                label="actual",
            )
            ax.set_ylabel(f"{name}\nangle (deg)")
            ax.grid(True, alpha=0.3)
            if j == 0:
                ax.legend(loc="upper right", fontsize="small")
        axes[-1].set_xlabel("time (s)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_tracking_error(tel: Telemetry, path: Path, title: str = "") -> Path:
    """Plot the tracking error goal − actual per joint, in degrees, on one axes against time (s).

    Returns ``path``.
    """
    t, goal, actual = _thinned(tel)
    fig = new_figure(_HEIGHT_PER_JOINT_IN * 2)
    if len(t) == 0:
        _no_data(fig, "no samples")
    else:
        err_deg = np.degrees(goal - actual)
        ax = fig.add_subplot(1, 1, 1)
        for j, name in enumerate(tel.joints):
            ax.plot(t, err_deg[:, j], linewidth=1.0, label=name)
        ax.axhline(0.0, color="black", linewidth=0.6)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("goal − actual (deg)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize="small", ncol=min(4, len(tel.joints)))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_latency(samples_ms: Mapping[str, Sequence[float]], path: Path, title: str = "") -> Path:
    """Plot the empirical CDF of latency samples (ms) per series, with p50 and p99 marked.

    ``samples_ms`` maps a series name (e.g. ``"command"``, ``"link ctrl--edge"``) to its
    samples in milliseconds. Empty series are listed as "no samples" in the legend; if
    every series is empty the figure just says "no samples". Returns ``path``.
    """
    series: dict[str, np.ndarray] = {}
    for name, samples in samples_ms.items():
        arr = np.asarray(list(samples), dtype=np.float64).reshape(-1)
        series[str(name)] = np.sort(arr[np.isfinite(arr)])
    fig = new_figure(_HEIGHT_PER_JOINT_IN * 2)
    if not any(len(a) for a in series.values()):
        _no_data(fig, "no samples")
    else:
        ax = fig.add_subplot(1, 1, 1)
        all_positive = all(a[0] > 0 for a in series.values() if len(a))
        for k, (name, arr) in enumerate(series.items()):
            color = f"C{k % 10}"
            if len(arr) == 0:
                ax.plot([], [], color=color, label=f"{name}: no samples")
                continue
            p50, p99 = np.percentile(arr, [50.0, 99.0])
            frac = np.arange(1, len(arr) + 1, dtype=np.float64) / len(arr)
            ax.step(
                arr,
                frac,
                where="post",
                color=color,
                linewidth=1.4,
                label=f"{name} (n={len(arr)}, p50={p50:.3g} ms, p99={p99:.3g} ms)",
            )
            ax.axvline(p50, color=color, linestyle="--", linewidth=0.9)
            ax.axvline(p99, color=color, linestyle=":", linewidth=0.9)
        ax.axhline(0.5, color="grey", linestyle="--", linewidth=0.5)
        ax.axhline(0.99, color="grey", linestyle=":", linewidth=0.5)
        lo = min(a[0] for a in series.values() if len(a))
        hi = max(a[-1] for a in series.values() if len(a))
        if all_positive and hi / lo > 100.0 and math.isfinite(hi / lo):
            ax.set_xscale("log")
        ax.set_xlabel("latency (ms)   [dashed: p50, dotted: p99]")
        ax.set_ylabel("fraction of samples ≤ x")
        ax.set_ylim(0.0, 1.02)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


_STATE_LEVEL = {"CLOSED": 0, "HALF_OPEN": 1, "OPEN": 2, "FORCED_OPEN": 2, "DISABLED": 0}


def plot_breakers(
    timelines: Mapping[str, Sequence[tuple[float, str]]], end_s: float, path: Path, title: str = ""
) -> Path:
    """Each circuit breaker's state over time (s): CLOSED, HALF_OPEN or OPEN, one row per breaker."""
    rows = max(1, len(timelines))
    fig = new_figure(1.2 * rows + 1.0)
    if not timelines:
        _no_data(fig, "no circuit breakers")
        return save_figure(fig, path)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    for ax, (name, changes) in zip(axes, sorted(timelines.items()), strict=True):
        times = [0.0] + [t for t, _ in changes] + [end_s]
        levels = [0] + [_STATE_LEVEL[state] for _, state in changes]
        levels.append(levels[-1])
        ax.step(times, levels, where="post", color="tab:red")
        ax.fill_between(times, levels, step="post", alpha=0.2, color="tab:red")
        ax.set_yticks([0, 1, 2], ["closed", "half-open", "open"])
        ax.set_ylim(-0.3, 2.3)
        ax.set_title(name, loc="left", fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("time (s)")
    if title:
        fig.suptitle(f"{title}: circuit breakers")
    return save_figure(fig, path)
