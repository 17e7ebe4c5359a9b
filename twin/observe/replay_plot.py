"""The files `twin replay --out DIR` writes: an overlay plot and the samples as CSV.

``DIR/<recording>.png`` shows the goal, the recorded and the twin's position over
time in one panel and the error twin − recorded in a second, with the stretches
where torque was off shaded. ``DIR/<recording>.csv`` holds the same samples.
Both are deterministic (the same result gives the same bytes) and written
atomically (``twin.observe.files.atomic_file``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from twin.observe.files import atomic_file, write_text_atomic
from twin.observe.plots import new_figure, save_figure
from twin.replay import ReplayResult

__all__ = ["CSV_COLUMNS", "plot_replay", "replay_csv", "write_replay"]

CSV_COLUMNS = ("t_s", "goal_rad", "recorded_rad", "twin_rad", "error_rad", "torque_on")
_HEIGHT_IN = 5.5


def _fixed(x: float) -> str:
    """`x` with 6 decimals, and never "-0.000000"."""
    return f"{round(float(x), 6) + 0.0:.6f}"


def replay_csv(result: ReplayResult) -> str:
    """The samples of a replay as CSV text: one row per recorded sample, columns CSV_COLUMNS."""
    rec = result.recording
    error = result.error
    lines = [",".join(CSV_COLUMNS)]
    for k in range(len(rec.t)):
        values = (rec.t[k], rec.goal[k], rec.position[k], result.twin[k], error[k])
        lines.append(",".join(_fixed(v) for v in values) + f",{int(bool(rec.torque_on[k]))}")
    return "\n".join(lines) + "\n"


def _torque_off_spans(t: np.ndarray, on: np.ndarray) -> list[tuple[float, float]]:
    """(start, end) times of each run of torque-off samples; a run lasts until the next sample."""
    spans: list[tuple[float, float]] = []
    k, n = 0, len(t)
    while k < n:
        if on[k]:
            k += 1
            continue
        start = k
        while k < n and not on[k]:
            k += 1
        spans.append((float(t[start]), float(t[min(k, n - 1)])))
    return spans


def plot_replay(result: ReplayResult, path: Path) -> Path:
    """Write the overlay plot of `result` to `path` (PNG, atomically); return `path`."""
    rec = result.recording
    fig = new_figure(_HEIGHT_IN)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    top.plot(rec.t, np.degrees(rec.goal), "--", linewidth=1.0, color="tab:blue", label="goal")
    top.plot(rec.t, np.degrees(rec.position), linewidth=1.2, color="tab:orange", label="recorded")
    top.plot(rec.t, np.degrees(result.twin), linewidth=1.2, color="tab:green", label="twin")
    bottom.plot(rec.t, np.degrees(result.error), linewidth=1.0, color="tab:red")
    bottom.axhline(0.0, color="black", linewidth=0.6)
    for k, (start, end) in enumerate(_torque_off_spans(rec.t, rec.torque_on)):
        for ax in (top, bottom):
            ax.axvspan(
                start, end, color="grey", alpha=0.2, linewidth=0, label="torque off" if k == 0 else None
            )
    top.set_ylabel("angle (deg)")
    bottom.set_ylabel("twin − recorded (deg)")
    bottom.set_xlabel("time (s)")
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
    top.legend(loc="upper right", fontsize="small", ncol=4)
    fig.suptitle(
        f"{rec.name} on the twin ({result.model}): MAE {result.mae_rad:.4f} rad "
        f"({math.degrees(result.mae_rad):.2f}°)"
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        save_figure(fig, tmp)
    return path


def write_replay(result: ReplayResult, out_dir: Path) -> tuple[Path, Path]:
    """Write `out_dir/<recording>.png` and `out_dir/<recording>.csv`; return both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = result.recording.name
    csv_path = out_dir / f"{name}.csv"
    write_text_atomic(csv_path, replay_csv(result))
    png_path = plot_replay(result, out_dir / f"{name}.png")
    return png_path, csv_path
