"""The driver's software watchdog: no fresh trajectory within the timeout stops the motion."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import twin

PAN_TILT = Path(__file__).resolve().parents[3] / "scenarios" / "pan_tilt.yaml"
DRIVER = "topology.services.3"  # pan_tilt's driver entry


def _run(*sets: str) -> twin.RunResult:
    base = ["duration=2.2", "assertions=[]", f"{DRIVER}.trajectory_timeout_ms=400"]
    return twin.run(twin.load(PAN_TILT, [*base, *sets]))


def test_hold_stops_a_move_that_no_fresh_trajectory_follows() -> None:
    result = _run()
    assert result.metrics["driver"]["watchdog_trips"] == 1
    t, goal, _ = result.telemetry.arrays()
    # The first move (to pan 60° over 1.5 s from 0.5 s) is cut 0.4 s after it arrived: the goal
    # stops short of 60° and stays there.
    after = goal[t > 1.2, 0]
    assert np.ptp(after) < 1e-9 and math.degrees(after[0]) < 50
    assert result.complete and result.verdict == "PASS", "holding is the watchdog working, not a halt"
    assert any(e["kind"] == "trajectory_timeout" for e in result.log.events)


def test_torque_off_halts_the_machine_and_the_run_is_incomplete() -> None:
    result = _run(f"{DRIVER}.on_trajectory_timeout=torque_off")
    assert result.metrics["driver"]["watchdog_trips"] == 1 and result.metrics["driver"]["halted"] == 1
    assert result.verdict == "INCOMPLETE" and "watchdog" in result.reason
    t, _, _ = result.telemetry.arrays()
    assert t[-1] > 2.1, "the arm is still watched after its torque went off"


def test_the_timeout_is_validated(tmp_path: Path) -> None:
    with pytest.raises(twin.ScenarioError, match="trajectory_timeout_ms"):
        twin.load(PAN_TILT, [f"{DRIVER}.trajectory_timeout_ms=-1"])


def test_a_control_loop_that_dies_makes_the_run_incomplete() -> None:
    """A bug below the driver (here a bus wrapper raising ValueError) ends its loop: recorded as
    the service's failure, and the run that goes on without control is INCOMPLETE."""
    import simpy

    from twin import api
    from twin.assembly import build

    class Breaks:
        def __init__(self, inner: object, env: simpy.Environment) -> None:
            self.inner, self.env = inner, env

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

        def write_goals(self, goals: object) -> None:
            if self.env.now > 1.0:
                raise ValueError("a bug in a bus layer")
            self.inner.write_goals(goals)  # type: ignore[attr-defined]

    scenario = twin.load(PAN_TILT, ["duration=2", "assertions=[]"])
    machine = build(scenario, wrap_bus=lambda bus, env: Breaks(bus, env))  # type: ignore[arg-type,return-value]
    try:
        stopped = api._run_clock(machine, None, api.StopRequest())
        machine.log.finish()
        result = api._collect(machine, scenario, None, stopped, 0)
    finally:
        machine.close()
    assert result.verdict == "INCOMPLETE"
    assert "the driver's control loop stopped" in result.reason and "a bug in a bus layer" in result.reason
