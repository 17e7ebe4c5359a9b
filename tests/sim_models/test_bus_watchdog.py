"""The Dynamixel Bus Watchdog (98) in the firmware model, on virtual time.

e-Manual (X series, Bus Watchdog): unit 20 ms, 0 off, 1..127 armed while torque is on,
-1 once it fired; then the servo stops and the goal registers refuse writes with a data
range error until 0 is written.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from servo_core.catalogue import servo_spec
from servo_core.feetech_table import FEETECH_STS
from sim_models.plant import Mount, Plant
from sim_models.robots import pendulum_urdf
from sim_models.servo.device import RegisterError, VirtualServo
from sim_models.servo.firmware import FIRMWARE

TICK = 2.0 * math.pi / 4096
UNIT_S = 0.020
ARMED = 5  # 100 ms
FAR = 2048 + 1500  # a goal about 2.3 rad away
SLOW = 20  # profile velocity, 0.229 rpm units: about 0.48 rad/s, so the far goal takes seconds


@pytest.fixture
def rig() -> Iterator[tuple[Plant, VirtualServo]]:
    """An XL430 on a light pendulum without gravity, torque on, moving slowly."""
    servo = VirtualServo(servo_spec("xl430-w250"), 1)
    with Plant(pendulum_urdf(0.05, 0.05), [Mount("pivot", servo)], gravity=0.0) as plant:
        servo.write_register("torque_enable", 1)
        servo.write_register("profile_velocity", SLOW)
        yield plant, servo


def _fire(plant: Plant, servo: VirtualServo) -> float:
    """Arm, send a far goal, then fall silent until the watchdog fires; returns when it did (s)."""
    servo.write_register("bus_watchdog", ARMED)
    servo.write_register("goal_position", FAR)
    start = plant.time
    while not servo.watchdog_fired:
        plant.advance_to(plant.time + 0.001)
        assert plant.time - start < 1.0, "the watchdog never fired"
    return plant.time - start


def test_it_fires_after_the_armed_time_without_an_instruction(rig: tuple[Plant, VirtualServo]) -> None:
    plant, servo = rig
    servo.write_register("bus_watchdog", ARMED)
    for k in range(1, 11):  # an instruction every 50 ms keeps it quiet for half a second
        plant.advance_to(0.05 * k)
        servo.read_register("present_position")
    assert not servo.watchdog_fired
    last = plant.time
    plant.advance_to(last + ARMED * UNIT_S - 0.002)
    assert not servo.watchdog_fired
    plant.advance_to(last + ARMED * UNIT_S + 0.002)
    assert servo.watchdog_fired
    assert servo.read(98, 1) == b"\xff"  # Bus Watchdog Error: -1
    assert servo.read_register("bus_watchdog") == -1


def test_a_fired_servo_holds_where_it_stopped(rig: tuple[Plant, VirtualServo]) -> None:
    plant, servo = rig
    start = servo.read_register("present_position")
    after = _fire(plant, servo)
    assert after == pytest.approx(ARMED * UNIT_S, abs=0.002)
    stopped = servo.read_register("present_position")
    assert 0 < stopped - start < 150  # it had begun to move, far short of the goal
    plant.advance_to(plant.time + 1.0)  # long enough to have gone a further 0.5 rad
    held = servo.read_register("present_position")
    assert abs(held - stopped) <= 3
    assert abs(servo.peek("goal_position") - stopped) <= 3  # the goal became where it stopped


def test_goals_are_read_only_until_zero_is_written(rig: tuple[Plant, VirtualServo]) -> None:
    plant, servo = rig
    _fire(plant, servo)
    for name, value in (("goal_position", FAR), ("goal_velocity", 10), ("goal_pwm", 100)):
        with pytest.raises(RegisterError) as refused:
            servo.write_register(name, value)
        assert refused.value.kind == "range"  # a Data Range Error in the status packet
    with pytest.raises(RegisterError):
        servo.write_register("bus_watchdog", ARMED)  # arming again needs the error cleared
    servo.write_register("bus_watchdog", 0)
    assert servo.read_register("bus_watchdog") == 0 and not servo.watchdog_fired
    before = servo.read_register("present_position")
    servo.write_register("goal_position", FAR)
    plant.advance_to(plant.time + 0.5)
    assert servo.read_register("present_position") - before > 100  # moving towards it again


def test_it_only_watches_while_torque_is_on(rig: tuple[Plant, VirtualServo]) -> None:
    plant, servo = rig
    servo.write_register("torque_enable", 0)
    servo.write_register("bus_watchdog", ARMED)
    plant.advance_to(plant.time + 1.0)
    assert not servo.watchdog_fired
    servo.write_register("torque_enable", 1)  # itself an instruction: the count starts here
    turned_on = plant.time
    plant.advance_to(turned_on + ARMED * UNIT_S - 0.002)
    assert not servo.watchdog_fired
    plant.advance_to(turned_on + ARMED * UNIT_S + 0.002)
    assert servo.watchdog_fired


def test_off_it_never_fires(rig: tuple[Plant, VirtualServo]) -> None:
    plant, servo = rig
    servo.write_register("goal_position", FAR)
    plant.advance_to(plant.time + 1.0)
    assert not servo.watchdog_fired and servo.read_register("bus_watchdog") == 0


@pytest.mark.parametrize("raw", [b"\xff", b"\x80", b"\xc8"])  # -1, -128, -56: only 0..127 are taken
def test_negative_values_are_refused(raw: bytes) -> None:
    servo = VirtualServo(servo_spec("xl430-w250"), 1)
    with pytest.raises(RegisterError) as refused:
        servo.write(98, raw)
    assert refused.value.kind == "range"
    servo.write(98, b"\x7f")
    assert servo.read_register("bus_watchdog") == 127


def test_an_instruction_arriving_after_the_deadline_finds_it_fired(rig: tuple[Plant, VirtualServo]) -> None:
    # The emulator stamps a packet with the wall clock, which may run ahead of the plant.
    plant, servo = rig
    servo.write_register("bus_watchdog", ARMED)
    servo.heard(plant.time + ARMED * UNIT_S + 0.05)
    assert servo.watchdog_fired
    with pytest.raises(RegisterError):
        servo.write_register("goal_position", FAR)


def test_velocity_mode_stops_and_zeroes_goal_velocity() -> None:
    servo = VirtualServo(servo_spec("xl430-w250"), 1)
    with Plant(pendulum_urdf(0.05, 0.05), [Mount("pivot", servo)], gravity=0.0) as plant:
        servo.write_register("operating_mode", 1)
        servo.write_register("torque_enable", 1)
        servo.write_register("goal_velocity", 50)  # about 1.2 rad/s
        servo.write_register("bus_watchdog", ARMED)
        plant.advance_to(ARMED * UNIT_S + 0.01)
        assert servo.watchdog_fired and servo.peek("goal_velocity") == 0
        plant.advance_to(plant.time + 0.5)
        assert abs(servo.velocity) < 0.05


def test_reboot_turns_it_off(rig: tuple[Plant, VirtualServo]) -> None:
    plant, servo = rig
    _fire(plant, servo)
    servo.reboot()
    assert servo.read_register("bus_watchdog") == 0 and not servo.watchdog_fired


def test_feetech_sts_has_no_watchdog() -> None:
    assert "bus_watchdog" not in FEETECH_STS
    assert all(fw.watchdog is None for proto, fw in FIRMWARE.items() if proto.name == "feetech")
    servo = VirtualServo(servo_spec("sts3215"), 1)
    servo.write_register("torque_enable", 1)
    for _ in range(3000):
        servo.step(0.0, 0.0, 0.001)
    assert not servo.watchdog_fired and servo.torque_enabled
