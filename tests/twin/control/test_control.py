"""Trajectories, limits, calibration and the planner's rules."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.control.commands import MoveCommand, SineCommand
from twin.control.joints import Joint
from twin.control.limits import Calibration, JointLimits, clip_to_limits
from twin.control.planning import PlanningError, TrajectoryPlanner
from twin.control.trajectory import MIN_JERK_PEAK_VELOCITY, Anchored, Move, SineSweep, min_jerk, trapezoid
from twin.scenario.assertions import parse_assertion


@pytest.mark.parametrize("shape", [min_jerk, trapezoid])
def test_shapes_start_and_end_at_rest(shape) -> None:
    h = 1e-6
    assert shape(0.0) == 0.0 and shape(1.0) == 1.0
    assert abs(shape(h) - shape(0.0)) / h < 1e-2
    assert abs(shape(1.0) - shape(1.0 - h)) / h < 1e-2


@given(st.floats(0, 1), st.floats(0, 1))
def test_shapes_are_monotonic(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert min_jerk(lo) <= min_jerk(hi) + 1e-12
    assert trapezoid(lo) <= trapezoid(hi) + 1e-12


def test_min_jerk_peak_velocity() -> None:
    h = 1e-6
    assert (min_jerk(0.5 + h) - min_jerk(0.5 - h)) / (2 * h) == pytest.approx(MIN_JERK_PEAK_VELOCITY)


def test_anchored_blends_from_the_setpoint_in_force() -> None:
    move = Move((0.0,), (1.0,), 1.0)
    anchored = Anchored(move, t0=5.0, current=[0.2], blend_s=0.5)
    assert anchored.sample(5.0) == [pytest.approx(0.2)], "no jump at take-over"
    assert anchored.sample(6.0) == [pytest.approx(1.0)], "the target is reached all the same"


def test_sine_sweep_chirps() -> None:
    sweep = SineSweep((0.0,), (0.5,), (0.1,), (1.0,), (3.0,), 2.0)
    assert sweep.sample(0.0) == [pytest.approx(0.1)]
    assert max(abs(sweep.sample(k / 1000)[0] - 0.1) for k in range(2000)) <= 0.5 + 1e-9


def test_clip_reports_what_was_actually_sent() -> None:
    limits = [JointLimits(-1.0, 1.0, 5.0)] * 3
    sent, clipped = clip_to_limits([-2.0, 0.5, 3.0], limits)
    assert sent == [-1.0, 0.5, 1.0] and clipped == 2


@given(st.floats(-3, 3), st.sampled_from([1, -1]), st.floats(-1, 1))
def test_calibration_round_trip(q: float, direction: int, offset: float) -> None:
    cal = Calibration(direction, offset)
    assert cal.to_joint(cal.to_servo(q)) == pytest.approx(q, abs=1e-12)


def _planner() -> TrajectoryPlanner:
    joints = [
        Joint("pan", 1, JointLimits(-2.0, 2.0, 1.0), Calibration()),
        Joint("tilt", 2, JointLimits(-1.0, 1.0, 1.0), Calibration()),
    ]
    return TrajectoryPlanner(joints=joints)


def test_planner_refuses_targets_outside_the_limits() -> None:
    with pytest.raises(PlanningError, match=r"joint tilt target 68.8° is outside \[-57.3°, 57.3°\]"):
        _planner().plan([0.0, 0.0], MoveCommand({"tilt": 1.2}, 1.0))


def test_planner_refuses_unknown_joints() -> None:
    with pytest.raises(PlanningError, match="unknown joint"):
        _planner().plan([0.0, 0.0], MoveCommand({"elbow": 0.1}, 1.0))


def test_planner_stretches_moves_to_the_velocity_limit() -> None:
    planner = _planner()
    move = planner.plan([0.0, 0.0], MoveCommand({"pan": 1.0}, 0.1))
    assert move.duration_s == pytest.approx(MIN_JERK_PEAK_VELOCITY * 1.0 / 1.0)
    assert planner.stretched == 1
    held = move.sample(0.5)
    assert held[1] == 0.0, "joints not named hold where they are"


def test_planner_refuses_a_sine_faster_than_the_joint() -> None:
    command = SineCommand({"pan": 0.5}, {"pan": 0.0}, {"pan": 1.0}, {"pan": 1.0}, 2.0)
    with pytest.raises(PlanningError, match="sine peaks"):
        _planner().plan([0.0, 0.0], command)


@pytest.mark.parametrize(
    ("text", "path", "op", "bound"),
    [
        ("tracking.max_error_deg < 2.0", "tracking.max_error_deg", "<", 2.0),
        ("latency.command.p99_ms<=20", "latency.command.p99_ms", "<=", 20.0),
        ("links.a--b.drops == 0", "links.a--b.drops", "==", 0.0),
        ("  commands.failed != -1e-3 ", "commands.failed", "!=", -0.001),
    ],
)
def test_assertion_grammar(text: str, path: str, op: str, bound: float) -> None:
    a = parse_assertion(text)
    assert (a.path, a.op, a.bound) == (path, op, bound)


@pytest.mark.parametrize(
    "text", ["x <", "< 3", "a.b ~ 3", "__import__('os') < 1", "a.b < 1 or 1", "a..b < 1"]
)
def test_assertion_grammar_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="cannot parse assertion"):
        parse_assertion(text)


def test_assertion_with_no_samples_fails() -> None:
    assert not parse_assertion("latency.command.p99_ms < 10").holds(math.nan)


def test_planner_plans_a_sine_that_holds_the_other_joints() -> None:
    command = SineCommand({"pan": 0.1}, {"pan": 0.2}, {"pan": 1.0}, {"pan": 1.0}, 2.0)
    sweep = _planner().plan([0.0, 0.3], command)
    assert sweep.sample(0.25) == [pytest.approx(0.3), pytest.approx(0.3)]  # 0.2 + 0.1·sin(π/2)
