"""Acceptance: every catalogue model meets its datasheet when the simulated joint is driven.

Nothing here reads a motor parameter back. Each servo is mounted on the pendulum rig
(`pivot`, horizontal axis, gravity torque m·g·L·sin q), commanded only through its
control table (`write` of encoded register bytes, as a bus would) and measured only
through its control table (`read` of present position / velocity):

* stall torque: with m·g·L = 2 × the datasheet stall torque the servo, driven flat out
  towards a goal far above, can lift the arm only to sin q = 1/2; the equilibrium
  angle gives the torque it delivers at zero speed, m·g·L·sin q;
* no-load speed: a negligible load without gravity, open-loop PWM at 100 %, gives
  the free-running speed.

Both must lie within 3 % of the datasheet figures.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from servo_core.catalogue import ServoSpec, catalogue
from sim_models.plant import Mount, Plant
from sim_models.robots import pendulum_urdf
from sim_models.servo.device import VirtualServo

G = 9.81
TOLERANCE = 0.03
CENTRE_TICKS = 2048
TICKS_PER_REV = 4096
RAD_PER_TICK = 2.0 * math.pi / TICKS_PER_REV
DXL_RAD_S_PER_UNIT = 0.229 * 2.0 * math.pi / 60.0  # Present Velocity: 0.229 rpm per unit
STS_RAD_S_PER_UNIT = RAD_PER_TICK  # Present Speed: ticks per second

# The datasheet models; the `-identified` variants describe one bench's servos, fitted to its
# recordings (tests/twin/test_identify.py judges those), not the datasheet's figures.
MODELS = sorted(name for name in catalogue() if not name.endswith("-identified"))


def present_angle_rad(servo: VirtualServo) -> float:
    return (servo.read_register("present_position") - CENTRE_TICKS) * RAD_PER_TICK


def present_speed_rad_s(servo: VirtualServo) -> float:
    if servo.spec.protocol == "dynamixel":
        return servo.read_register("present_velocity") * DXL_RAD_S_PER_UNIT
    return servo.read_register("present_speed") * STS_RAD_S_PER_UNIT


@pytest.fixture(params=MODELS)
def spec(request: pytest.FixtureRequest) -> ServoSpec:
    return catalogue()[request.param]


@pytest.fixture
def stall_rig(spec: ServoSpec) -> Iterator[tuple[Plant, VirtualServo, float]]:
    length_m = 0.1
    mass_kg = 2.0 * spec.stall_torque_nm / (G * length_m)
    servo = VirtualServo(spec, 1)
    with Plant(pendulum_urdf(length_m, mass_kg), [Mount("pivot", servo)], gravity=-G) as plant:
        yield plant, servo, mass_kg * G * length_m


@pytest.fixture
def free_rig(spec: ServoSpec) -> Iterator[tuple[Plant, VirtualServo]]:
    servo = VirtualServo(spec, 1)
    with Plant(pendulum_urdf(0.01, 0.001), [Mount("pivot", servo)], gravity=0.0) as plant:
        yield plant, servo


def test_stall_torque_matches_datasheet(
    spec: ServoSpec, stall_rig: tuple[Plant, VirtualServo, float]
) -> None:
    plant, servo, mgl = stall_rig
    servo.write_register("torque_enable", 1)
    # A goal ~167° above: the position loop saturates at full PWM long before the arm gets there.
    servo.write_register("goal_position", CENTRE_TICKS + 1900)
    plant.advance_to(3.0)

    q = present_angle_rad(servo)
    assert abs(present_speed_rad_s(servo)) < 0.05 * spec.no_load_speed_rad_s, "arm has not settled"
    assert 0.0 < q < math.pi / 2, f"arm should hang between 0 and 90°, is at {math.degrees(q):.1f}°"
    measured = mgl * math.sin(q)
    ratio = measured / spec.stall_torque_nm
    assert ratio == pytest.approx(1.0, abs=TOLERANCE), (
        f"{spec.name}: measured stall torque {measured:.3f} N·m at q = {math.degrees(q):.2f}°, "
        f"datasheet {spec.stall_torque_nm} N·m (ratio {ratio:.4f})"
    )
    # Still driving upwards and holding: the torque is the servo's, not a resting arm's.
    assert servo.torque_enabled


def test_no_load_speed_matches_datasheet(spec: ServoSpec, free_rig: tuple[Plant, VirtualServo]) -> None:
    plant, servo = free_rig
    # Operating mode is EEPROM: it is written while torque is still off.
    if spec.protocol == "dynamixel":
        servo.write_register("operating_mode", 16)  # PWM (voltage) control
        servo.write_register("goal_pwm", servo.read_register("pwm_limit"))  # 885 = 100 %
    else:
        servo.write_register("operating_mode", 2)  # open-loop PWM
        servo.write_register("goal_time", 1000)  # PWM magnitude 1000 = 100 %, direction bit 10 clear
    servo.write_register("torque_enable", 1)
    plant.advance_to(1.0)

    speed = present_speed_rad_s(servo)
    ratio = speed / spec.no_load_speed_rad_s
    assert ratio == pytest.approx(1.0, abs=TOLERANCE), (
        f"{spec.name}: measured no-load speed {speed:.3f} rad/s, "
        f"datasheet {spec.no_load_speed_rad_s:.3f} rad/s (ratio {ratio:.4f})"
    )
    # The speed is steady, not a transient passing through the datasheet value.
    angle_before = plant.joint_positions(["pivot"])[0]
    plant.advance_to(1.2)
    mean_speed = (plant.joint_positions(["pivot"])[0] - angle_before) / 0.2
    assert mean_speed / spec.no_load_speed_rad_s == pytest.approx(1.0, abs=TOLERANCE)


def test_no_load_speed_reverses_with_pwm_sign(spec: ServoSpec, free_rig: tuple[Plant, VirtualServo]) -> None:
    plant, servo = free_rig
    if spec.protocol == "dynamixel":
        servo.write_register("operating_mode", 16)
        servo.write_register("goal_pwm", -servo.read_register("pwm_limit"))
    else:
        servo.write_register("operating_mode", 2)
        servo.write_register("goal_time", 1000 | 1 << 10)  # sign at bit 10: full PWM backwards
    servo.write_register("torque_enable", 1)
    plant.advance_to(1.0)

    ratio = present_speed_rad_s(servo) / spec.no_load_speed_rad_s
    assert ratio == pytest.approx(-1.0, abs=TOLERANCE)


def test_xl430_at_12_v_matches_its_12_v_datasheet_figures() -> None:
    """Both datasheet points scale with the supply: the XL430-W250 is rated 1.5 N·m and 61 rpm at 12 V."""
    spec = catalogue()["xl430-w250"]
    assert spec.nominal_voltage_v == pytest.approx(11.1)
    length_m = 0.1
    mass_kg = 2.0 * 1.5 / (G * length_m)
    servo = VirtualServo(spec, 1, supply_v=12.0)
    with Plant(pendulum_urdf(length_m, mass_kg), [Mount("pivot", servo)]) as plant:
        servo.write_register("torque_enable", 1)
        servo.write_register("goal_position", CENTRE_TICKS + 1900)
        plant.advance_to(3.0)
        torque = mass_kg * G * length_m * math.sin(present_angle_rad(servo))
    assert torque / 1.5 == pytest.approx(1.0, abs=TOLERANCE)
    assert servo.read_register("present_input_voltage") == 120

    servo = VirtualServo(spec, 1, supply_v=12.0)
    with Plant(pendulum_urdf(0.01, 0.001), [Mount("pivot", servo)], gravity=0.0) as plant:
        servo.write_register("operating_mode", 16)
        servo.write_register("goal_pwm", 885)
        servo.write_register("torque_enable", 1)
        plant.advance_to(1.0)
        speed = present_speed_rad_s(servo)
    assert speed / (61.0 * math.pi / 30.0) == pytest.approx(1.0, abs=TOLERANCE)
