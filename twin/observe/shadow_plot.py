"""shadow.png: per joint, the goal, the real servo and the twin beside it, with the alarms."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from servo_core.errors import ConfigError
from twin.observe.plots import new_figure, save_figure, thin

__all__ = ["plot_shadow", "read_shadow"]


def read_shadow(path: Path) -> tuple[list[str], np.ndarray]:
    """The joints and the rows (t, then goal, hardware, twin per joint; rad) of a shadow.csv."""
    try:
        with path.open(encoding="utf-8") as fh:
            header = fh.readline().rstrip("\n").split(",")
            data = np.loadtxt(fh, delimiter=",", ndmin=2, dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the shadow recording: {exc}") from None
    joints = [c[: -len("_goal_rad")] for c in header[1::3]]
    if data.size == 0:
        data = np.zeros((0, len(header)))
    return joints, data


def plot_shadow(csv: Path, alarms: Sequence[tuple[float, str, str]], path: Path, title: str) -> Path:
    joints, data = read_shadow(csv)
    (data,) = thin(data)
    fig = new_figure(2.2 * max(1, len(joints)) + 0.6)
    t = data[:, 0]
    for k, name in enumerate(joints):
        ax = fig.add_subplot(len(joints), 1, k + 1)
        goal, hw, tw = (np.degrees(data[:, 1 + 3 * k + c]) for c in range(3))
        ax.plot(t, goal, "--", linewidth=1.0, color="tab:gray", label="goal")
        ax.plot(t, hw, linewidth=1.4, color="tab:blue", label="hardware")
        ax.plot(t, tw, linewidth=1.0, color="tab:orange", label="twin")
        for at, joint, _ in alarms:
            if joint == name:
                ax.axvline(at, color="tab:red", linewidth=1.0, label="divergence alarm")
        ax.set_ylabel(f"{name} (deg)")
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        ax.legend(unique.values(), unique.keys(), loc="upper right", fontsize="small")
        ax.grid(True, alpha=0.3)
    fig.axes[-1].set_xlabel("wall-clock time (s)")
    n = sum(1 for _ in alarms)
    fig.suptitle(f"{title}: hardware vs shadow twin ({n} alarm{'s' if n != 1 else ''})")
    return save_figure(fig, path)
