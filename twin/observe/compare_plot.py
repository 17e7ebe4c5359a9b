"""The overlay plot of `twin compare`: each run's actual joint positions on one figure.

One subplot per joint the runs have in common; in it the first run's goal (dashed) and every
run's actual position (solid), in degrees against time (s), each line thinned to
:data:`twin.observe.plots.MAX_POINTS` samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from twin.observe.plots import new_figure, save_figure, thin
from twin.observe.telemetry import Telemetry

__all__ = ["common_joints", "plot_compare_tracking"]

_HEIGHT_PER_JOINT_IN = 2.2


def common_joints(telemetries: Sequence[Telemetry]) -> tuple[list[str], list[str]]:
    """The joints every recording has (in the first one's order), and those some lack."""
    if not telemetries:
        return [], []
    everywhere = set(telemetries[0].joints).intersection(*(t.joints for t in telemetries[1:]))
    seen: list[str] = []
    for tel in telemetries:
        seen.extend(j for j in tel.joints if j not in seen)
    return [j for j in seen if j in everywhere], [j for j in seen if j not in everywhere]


def plot_compare_tracking(runs: Sequence[tuple[str, Telemetry]], path: Path, title: str = "") -> Path:
    """Overlay the runs' tracking, `runs` being (label, telemetry) with the baseline first.

    Joints that are not in every run are left out. Returns ``path``.
    """
    joints, _ = common_joints([tel for _, tel in runs])
    fig = new_figure(_HEIGHT_PER_JOINT_IN * max(1, len(joints)))
    if not joints or not any(len(tel) for _, tel in runs):
        ax = fig.add_subplot(1, 1, 1)
        ax.set_axis_off()
        message = "no joints in common" if not joints else "no samples"
        ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=14, transform=ax.transAxes)
    else:
        axes = fig.subplots(len(joints), 1, sharex=True, squeeze=False)[:, 0]
        data = [(label, tel, *tel.arrays()) for label, tel in runs]
        for row, (ax, joint) in enumerate(zip(axes, joints, strict=True)):
            for k, (label, tel, t, goal, actual) in enumerate(data):
                j = tel.joints.index(joint)
                tt, gg, aa = thin(t, np.degrees(goal[:, j]), np.degrees(actual[:, j]))
                if k == 0:
                    ax.plot(tt, gg, linestyle="--", linewidth=1.0, color="black", label="goal (first run)")
                ax.plot(tt, aa, linestyle="-", linewidth=1.1, color=f"C{k % 10}", label=label)
            ax.set_ylabel(f"{joint}\nangle (deg)")
            ax.grid(True, alpha=0.3)
            if row == 0:
                ax.legend(loc="best", fontsize="small")
        axes[-1].set_xlabel("time (s)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
