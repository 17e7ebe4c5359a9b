"""Tests of the pan-tilt head that run unchanged on the twin (CI) and on the bench (real servos).

pytest tests/test_machine.py                                                     # the twin
pytest tests/test_machine.py --twin-bus "dynamixel:///dev/ttyUSB0?baud=1000000"  # the bench
"""

from __future__ import annotations

import math

import pytest

from hw_adapters import ServoBus
from twin.testing import TwinRunner, assert_metrics

SCENARIO = "scenarios/pan_tilt.yaml"  # relative to the rootdir
PAN, TILT = 1, 2


def test_pan_reaches_its_goal(servo_bus: ServoBus) -> None:
    servo_bus.set_torque([PAN, TILT], True)
    servo_bus.write_goals({PAN: math.radians(30), TILT: math.radians(-10)})
    servo_bus.wait(1.5)  # virtual time on the twin, the wall clock on the bench
    states = servo_bus.read_states([PAN, TILT])
    assert math.degrees(states[PAN].position) == pytest.approx(30, abs=2)
    assert math.degrees(states[TILT].position) == pytest.approx(-10, abs=2)


def test_the_head_tracks_over_a_slow_link(twin_run: TwinRunner) -> None:
    result = twin_run(SCENARIO, "duration=4", "topology.links.0.latency.median_ms=10")
    assert_metrics(result, "tracking.joints.pan.max_error_deg < 8", "commands.failed == 0")
    assert result.metric("commands.completed") >= 2


@pytest.mark.hardware
def test_the_wiring_is_clean(servo_bus: ServoBus) -> None:
    for _ in range(200):
        servo_bus.read_states([PAN, TILT])
    counters = servo_bus.snapshot()
    assert (counters.retries, counters.no_reply, counters.checksum_errors) == (0, 0, 0)
