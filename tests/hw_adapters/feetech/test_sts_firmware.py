"""The emulated STS firmware (sim_models/servo/firmware.py, FeetechFirmware), register by register:
homing offset, single-turn readings, angle limits, the Lock flag and power cycles, torque caps,
protections and the writes it refuses. Servos are driven only through their memory table."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from servo_core.catalogue import servo_spec
from sim_models.plant import Mount, Plant
from sim_models.robots import pendulum_urdf
from sim_models.servo.device import RegisterError, VirtualServo
from sim_models.servo.firmware import FeetechFirmware

G = 9.81
TICKS_PER_RAD = 4096 / (2 * math.pi)


def actual_ticks(servo: VirtualServo) -> int:
    """Where the shaft is, in the encoder's own ticks (2048 = 0 rad), whatever the offset."""
    return math.floor(servo.position * TICKS_PER_RAD + 0.5) + 2048


def power_cycle(servo: VirtualServo) -> None:
    FeetechFirmware().power_cycle(servo)


@pytest.fixture
def free() -> Iterator[tuple[Plant, VirtualServo]]:
    """One STS3215 on a light pendulum without gravity."""
    servo = VirtualServo(servo_spec("sts3215"), 1)
    with Plant(pendulum_urdf(0.05, 0.05), [Mount("pivot", servo)], gravity=0.0) as plant:
        yield plant, servo


@pytest.fixture
def stalled() -> Iterator[tuple[Plant, VirtualServo]]:
    """One STS3215 lifting twice its stall torque: driven towards a goal far above, it stalls."""
    spec = servo_spec("sts3215")
    servo = VirtualServo(spec, 1)
    length = 0.1
    mass = 2.0 * spec.stall_torque_nm / (G * length)
    with Plant(pendulum_urdf(length, mass), [Mount("pivot", servo)], gravity=-G) as plant:
        yield plant, servo


def drive_up(plant: Plant, servo: VirtualServo) -> None:
    servo.write_register("torque_enable", 1)
    servo.write_register("goal_position", 2048 + 1900)


# -- homing offset ------------------------------------------------------------------------------
def test_homing_offset_shifts_the_reading_by_sign_magnitude_bytes(free: tuple[Plant, VirtualServo]) -> None:
    _, servo = free
    assert servo.read_register("present_position") == 2048
    servo.write(31, bytes([0x64, 0x08]))  # -100: magnitude 100, sign bit 11
    assert servo.read_register("homing_offset") == -100
    assert servo.read(56, 2) == (2148).to_bytes(2, "little")  # present = actual - offset
    servo.write(31, (100).to_bytes(2, "little"))
    assert servo.read(56, 2) == (1948).to_bytes(2, "little")


def test_half_turn_homing_makes_the_reading_2047_and_goals_follow(free: tuple[Plant, VirtualServo]) -> None:
    plant, servo = free
    servo.write_register("torque_enable", 1)
    servo.write_register("goal_position", 2600)
    plant.advance_to(1.0)
    servo.write_register("torque_enable", 0)
    plant.advance_to(1.2)
    here = actual_ticks(servo)
    assert abs(here - 2600) <= 3
    # LeRobot's set_half_turn_homings: offset 0, read, offset = reading - 2047.
    servo.write_register("homing_offset", 0)
    reading = servo.read_register("present_position")
    assert reading == here
    servo.write_register("homing_offset", reading - 2047)
    assert servo.read_register("present_position") == 2047
    # A goal in the readings' frame is reached at actual = goal + offset.
    servo.write_register("torque_enable", 1)
    assert servo.read_register("goal_position") == 2047  # torque on holds where it is
    servo.write_register("goal_position", 2047 + 300)
    plant.advance_to(2.5)
    assert abs(actual_ticks(servo) - (here + 300)) <= 3
    assert abs(servo.read_register("present_position") - 2347) <= 3


def test_readings_wrap_at_one_turn_and_goals_stay_in_the_readings_turn(
    free: tuple[Plant, VirtualServo],
) -> None:
    plant, servo = free
    servo.write_register("torque_enable", 1)
    servo.write_register("goal_position", 2600)
    plant.advance_to(1.0)
    here = actual_ticks(servo)
    servo.write_register("torque_enable", 0)
    servo.write_register("homing_offset", -1500)  # reading = actual + 1500, past one turn
    reading = servo.read_register("present_position")
    assert reading == (here + 1500) % 4096 and reading < 100
    servo.write_register("torque_enable", 1)
    # 20 ticks above the reading: a short move up, not a turn back down.
    servo.write_register("goal_position", reading + 20)
    plant.advance_to(2.0)
    assert abs(actual_ticks(servo) - (here + 20)) <= 3


def test_multi_turn_limits_do_not_wrap(free: tuple[Plant, VirtualServo]) -> None:
    plant, servo = free
    servo.write_register("torque_enable", 1)
    servo.write_register("goal_position", 2600)
    plant.advance_to(1.0)
    here = actual_ticks(servo)
    servo.write_register("homing_offset", -2047)
    assert servo.read_register("present_position") == (here + 2047) % 4096  # single turn: wraps
    servo.write_register("min_position_limit", 0)
    servo.write_register("max_position_limit", 0)  # Feetech: both 0 for multi-turn control
    assert servo.read(56, 2) == (here + 2047).to_bytes(2, "little")  # past 4095, not wrapped


def test_position_limits_clamp_goals_in_the_readings_frame(free: tuple[Plant, VirtualServo]) -> None:
    plant, servo = free
    servo.write_register("homing_offset", 200)
    servo.write_register("min_position_limit", 1500)
    servo.write_register("max_position_limit", 2500)
    servo.write_register("torque_enable", 1)
    servo.write_register("goal_position", 3000)
    assert servo.read_register("goal_position") == 2500  # clamped, not refused
    plant.advance_to(1.5)
    assert abs(actual_ticks(servo) - 2700) <= 3
    assert abs(servo.read_register("present_position") - 2500) <= 3


def test_present_goal_follows_the_profile(free: tuple[Plant, VirtualServo]) -> None:
    plant, servo = free
    servo.write_register("acceleration", 5)  # 500 ticks/s²
    servo.write_register("torque_enable", 1)
    servo.write_register("goal_position", 2048 + 800)
    plant.advance_to(0.5)
    midway = servo.read_register("present_goal")
    assert 2048 < midway < 2848
    plant.advance_to(3.5)
    assert servo.read_register("present_goal") == 2848


# -- EPROM and the Lock flag -------------------------------------------------------------------
def test_torque_does_not_guard_the_eprom() -> None:
    servo = VirtualServo(servo_spec("sts3215"), 1)
    servo.write_register("torque_enable", 1)
    servo.write_register("position_p_gain", 16)
    servo.write_register("operating_mode", 0)
    servo.write_register("min_position_limit", 100)
    assert servo.torque_enabled
    assert (servo.peek("position_p_gain"), servo.peek("min_position_limit")) == (16, 100)


def test_lock_1_takes_eprom_writes_but_a_power_cycle_loses_them() -> None:
    servo = VirtualServo(servo_spec("sts3215"), 1)
    assert servo.read_register("lock") == 1  # its power-on value
    servo.write_register("position_p_gain", 16)
    servo.write_register("id", 7)
    assert (servo.peek("position_p_gain"), servo.servo_id) == (16, 7)  # in effect at once
    power_cycle(servo)
    assert (servo.peek("position_p_gain"), servo.servo_id) == (32, 1)


def test_lock_0_saves_eprom_writes_over_a_power_cycle() -> None:
    servo = VirtualServo(servo_spec("sts3215"), 1)
    servo.write_register("torque_enable", 1)
    servo.write_register("lock", 0)
    servo.write_register("homing_offset", -1238)
    servo.write_register("max_position_limit", 3300)
    servo.write_register("position_p_gain", 16)
    servo.write_register("lock", 1)
    servo.write_register("position_d_gain", 32)  # locked again: not saved
    servo.write_register("acceleration", 254)  # SRAM
    power_cycle(servo)
    assert servo.regs[31:33] == bytes([0xD6, 0x0C])
    assert servo.peek("max_position_limit") == 3300
    assert servo.peek("position_p_gain") == 16
    assert servo.peek("position_d_gain") == 0
    assert servo.peek("acceleration") == 0
    assert servo.peek("lock") == 1
    assert not servo.torque_enabled and servo.peek("torque_enable") == 0


# -- output caps and protections -----------------------------------------------------------------
@pytest.mark.parametrize(("register", "cap"), [("max_torque_limit", 500), ("torque_limit", 300)])
def test_torque_limits_cap_the_output(stalled: tuple[Plant, VirtualServo], register: str, cap: int) -> None:
    plant, servo = stalled
    servo.write_register(register, cap)
    drive_up(plant, servo)
    plant.advance_to(0.5)
    load = servo.read_register("present_load")
    assert load == cap  # PWM duty, 0.1 %: flat out at the cap
    assert servo.read_register("hardware_error_status") == 0


def test_power_on_torque_limit_is_the_max_torque_limit() -> None:
    servo = VirtualServo(servo_spec("sts3215"), 1)
    servo.write_register("lock", 0)
    servo.write_register("max_torque_limit", 500)
    power_cycle(servo)
    assert servo.read_register("torque_limit") == 500


def test_overload_raises_the_status_bit_and_holds_torque_without_unloading(
    stalled: tuple[Plant, VirtualServo],
) -> None:
    plant, servo = stalled
    servo.write_register("overload_torque", 25)  # %
    servo.write_register("protection_time", 10)  # x 10 ms
    drive_up(plant, servo)
    plant.advance_to(0.05)
    assert servo.read_register("hardware_error_status") == 0
    plant.advance_to(0.3)
    assert servo.read_register("hardware_error_status") == 32
    assert servo.read_register("present_load") == 1000  # Unloading Condition 0: no cut
    assert servo.torque_enabled


def test_overload_protection_holds_the_protective_torque_until_torque_off(
    stalled: tuple[Plant, VirtualServo],
) -> None:
    plant, servo = stalled
    servo.write_register("overload_torque", 25)
    servo.write_register("protection_time", 10)
    servo.write_register("protective_torque", 20)  # %
    servo.write_register("unloading_condition", 32)  # overload cuts the output
    drive_up(plant, servo)
    plant.advance_to(0.5)
    assert servo.read_register("hardware_error_status") == 32
    assert servo.read_register("present_load") == 200
    servo.write_register("torque_enable", 0)
    assert servo.read_register("hardware_error_status") == 0


def test_over_current_turns_torque_off_when_unloading_says_so(stalled: tuple[Plant, VirtualServo]) -> None:
    plant, servo = stalled
    servo.write_register("protection_current", 10)  # 65 mA
    servo.write_register("overcurrent_protection_time", 10)
    servo.write_register("unloading_condition", 8)
    drive_up(plant, servo)
    plant.advance_to(0.5)
    assert servo.read_register("hardware_error_status") == 8
    assert servo.read_register("torque_enable") == 0 and not servo.torque_enabled
    servo.write_register("torque_enable", 0)
    assert servo.read_register("hardware_error_status") == 0


# -- modes -------------------------------------------------------------------------------------
def test_pwm_mode_drives_goal_time_as_open_loop_pwm(free: tuple[Plant, VirtualServo]) -> None:
    plant, servo = free
    servo.write_register("operating_mode", 2)
    servo.write(44, (0x400 | 400).to_bytes(2, "little"))  # -40 %: sign bit 10
    servo.write_register("torque_enable", 1)
    plant.advance_to(0.5)
    assert servo.read(60, 2) == (0x400 | 400).to_bytes(2, "little")  # Present Load -40 %
    assert servo.read_register("present_speed") < 0
    assert servo.read_register("moving") == 1


def test_step_mode_is_refused_as_not_modelled() -> None:
    servo = VirtualServo(servo_spec("sts3215"), 1)
    with pytest.raises(RegisterError, match="operating mode 3 is not modelled") as info:
        servo.write_register("operating_mode", 3)
    assert info.value.kind == "limit"
    assert servo.peek("operating_mode") == 0


# -- writes the firmware refuses ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("address", "data", "kind", "match"),
    [
        (43, b"\x08", "range", r"covers only part of goal_position \(42..43\)"),
        (41, b"\x00\x00", "range", r"covers only part of goal_position"),
        (50, b"\x00", "range", "no register at address 50"),
        (48, b"\xe8\x03\x00", "range", "no register at address 50"),
        (55, b"\x02", "limit", r"lock takes 0..1, got 2"),
        (33, b"\x04", "limit", r"operating_mode takes 0..3, got 4"),
        (5, b"\xfe", "limit", r"id takes 0..253, got 254"),
        (31, b"\x00\x10", "limit", r"homing_offset takes -2047..2047, got 0x1000"),
        (48, (1001).to_bytes(2, "little"), "limit", r"torque_limit takes 0..1000, got 1001"),
        (6, b"\x08", "limit", r"baud_rate takes 0..7, got 8"),
        (56, b"\x00\x08", "access", r"present_position \(56\) is read-only"),
        (3, b"\x09\x03", "access", r"model_number \(3\) is read-only"),
    ],
)
def test_refused_writes_change_nothing(address: int, data: bytes, kind: str, match: str) -> None:
    servo = VirtualServo(servo_spec("sts3215"), 1)
    before = bytes(servo.regs)
    with pytest.raises(RegisterError, match=match) as info:
        servo.write(address, data)
    assert info.value.kind == kind
    assert bytes(servo.regs) == before


def test_whole_register_spans_and_gaps_read() -> None:
    servo = VirtualServo(servo_spec("sts3215"), 1)
    servo.write(41, bytes([10]) + (2048).to_bytes(2, "little") + bytes(2) + (300).to_bytes(2, "little"))
    assert (servo.peek("acceleration"), servo.peek("goal_speed")) == (10, 300)
    assert servo.read(49, 7) == bytes([0x03, 0, 0, 0, 0, 0, 0x01])  # torque limit high byte .. lock
    assert servo.read(71, 16) == bytes(16)  # Goal_Position_2 and the factory area read 0
