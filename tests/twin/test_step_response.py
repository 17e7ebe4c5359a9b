"""Closed loop through every service: a pan-tilt step settles within tolerance."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

import twin

# A position-mode Dynamixel settles within a few encoder ticks of its goal:
# friction needs a small error before the P term overcomes it.
TOLERANCE_DEG = 0.5


def test_pan_tilt_step_settles(write_scenario: Callable[..., Path]) -> None:
    path = write_scenario(
        duration=2.5,
        task={
            "type": "waypoints",
            "steps": [{"at_s": 0.2, "pose": {"pan": 40, "tilt": -20}, "duration_s": 0.05}],
        },
    )
    result = twin.run(twin.load(path))
    t, goal, actual = result.telemetry.arrays()
    assert result.metrics["planner"]["stretched"] == 1, "a 40° step in 50 ms exceeds the velocity limit"
    final = np.degrees(actual[t > 2.0])
    assert np.all(np.abs(final[:, 0] - 40.0) < TOLERANCE_DEG)
    assert np.all(np.abs(final[:, 1] + 20.0) < TOLERANCE_DEG)
    overshoot_deg = np.degrees(actual[:, 0].max()) - 40.0
    assert overshoot_deg < 2.0
    moving = t[np.abs(np.degrees(actual[:, 0])) > 1.0]
    assert moving.size and 0.2 < moving[0] < 0.5, "the motion starts after the command's network latency"


def test_gravity_loads_the_tilt_axis(write_scenario: Callable[..., Path]) -> None:
    """Holding against gravity takes a steady error on a P-only servo; without gravity it vanishes."""
    task = {"type": "waypoints", "steps": [{"at_s": 0.1, "pose": {"tilt": 0}, "duration_s": 0.5}]}
    path = write_scenario(duration=1.5, task=task)
    with_gravity = twin.run(twin.load(path))
    without = twin.run(twin.load(path, ["physics.gravity_m_s2=0"]))
    err_g = with_gravity.metrics["tracking"]["joints"]["tilt"]["max_error_deg"]
    err_0 = without.metrics["tracking"]["joints"]["tilt"]["max_error_deg"]
    assert err_g > err_0
    assert math.isfinite(err_g)
