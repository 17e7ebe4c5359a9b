"""The Dynamixel X firmware model through the control table: homing offset, drive mode, the
current modes, limits, Moving/Moving Status, Shutdown, indirect addressing and the refusals
(with the RegisterError kind that becomes the Protocol 2.0 error number)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from servo_core.catalogue import servo_spec
from sim_models.plant import Mount, Plant
from sim_models.robots import pendulum_urdf
from sim_models.servo.device import RegisterError, VirtualServo

DT = 0.001
CENTRE = 2048
TURN = 4096
TICKS_PER_RAD = TURN / (2.0 * math.pi)
DXL_RAD_S_PER_UNIT = 0.229 * 2.0 * math.pi / 60.0
GOAL_CURRENT, CURRENT_LIMIT, PWM_LIMIT, GOAL_PWM = 102, 38, 36, 100


def raw(angle: float) -> int:
    """The encoder count of a shaft angle (centre-based, continuous)."""
    return CENTRE + math.floor(angle * TICKS_PER_RAD + 0.5)


def xl330(servo_id: int = 1, model: str = "xl330-m288", supply_v: float | None = None) -> VirtualServo:
    return VirtualServo(servo_spec(model), servo_id, supply_v)


def refused(servo: VirtualServo, address: int, data: bytes) -> str:
    """The kind of the RegisterError a write raises, the table left as it was."""
    before = bytes(servo.regs)
    with pytest.raises(RegisterError) as info:
        servo.write(address, data)
    assert bytes(servo.regs) == before
    return info.value.kind


@pytest.fixture
def rig() -> Iterator[tuple[Plant, VirtualServo]]:
    """An XL330-M288 on a light pendulum without gravity."""
    servo = xl330()
    with Plant(pendulum_urdf(0.05, 0.05), [Mount("pivot", servo)], gravity=0.0) as plant:
        yield plant, servo


# -- homing offset and drive mode --------------------------------------------------------------
def test_homing_offset_is_added_to_present_and_goal_positions() -> None:
    servo = xl330()
    servo.write_register("operating_mode", 4)  # extended position: any offset applies
    servo.step(0.3, 0.0, DT)  # torque off: the servo samples its shaft
    actual = servo.read_register("present_position")
    assert actual == raw(0.3) == 2244
    servo.write_register("homing_offset", 2047 - actual)  # LeRobot's half-turn homing
    assert servo.read_register("present_position") == 2047  # present = actual + offset
    assert servo.read_register("homing_offset") == -197
    servo.write_register("torque_enable", 1)
    assert servo.read_register("goal_position") == 2047  # holds where it is, in present's frame
    servo.write_register("goal_position", 2047 + 100)
    assert raw(servo.goal_rad) == 2244 + 100  # the goal is where present will read 2147


def test_position_mode_ignores_an_offset_beyond_1024() -> None:
    servo = xl330()
    servo.step(0.3, 0.0, DT)
    servo.write_register("homing_offset", 1500)  # stored, but ignored in position mode
    assert servo.read_register("homing_offset") == 1500
    assert servo.read_register("present_position") == 2244
    servo.write_register("homing_offset", -1000)  # within ±1,024: applied
    assert servo.read_register("present_position") == 1244
    servo.write_register("homing_offset", 1500)
    servo.write_register("operating_mode", 4)
    assert servo.read_register("present_position") == 2244 + 1500


def test_reverse_mode_inverts_present_and_goal_positions(rig: tuple[Plant, VirtualServo]) -> None:
    plant, servo = rig
    servo.write_register("operating_mode", 4)
    servo.write_register("drive_mode", 1)  # bit 0: reverse
    plant.place({1: 0.3})
    assert servo.read_register("present_position") == -2244
    servo.write_register("homing_offset", 2047 + 2244)  # the offset keeps its sign
    assert servo.read_register("present_position") == 2047
    servo.write_register("torque_enable", 1)
    servo.write_register("goal_position", 2047 + 200)  # present counts up...
    plant.advance_to(plant.time + 1.0)
    assert abs(servo.read_register("present_position") - 2247) <= 20
    (q,) = plant.joint_positions(["pivot"])
    assert q == pytest.approx(0.3 - 200 / TICKS_PER_RAD, abs=20 / TICKS_PER_RAD)  # ...the shaft turns back
    # Velocity keeps the motor's sign (the e-Manual inverts only the positions on the XL330).
    assert servo.read_register("goal_position") == 2247


def test_present_position_is_counted_within_one_turn_where_the_e_manual_says() -> None:
    servo = xl330()
    servo.step(3.5, 0.0, DT)  # at power-on the shaft is past the half turn
    assert servo.read_register("present_position") == raw(3.5) - TURN  # within 0..4095
    servo.write_register("operating_mode", 4)
    servo.step(3.5 + 2 * math.pi, 0.0, DT)  # torque off: counted on, continuously
    assert servo.read_register("present_position") == raw(3.5)
    servo.write_register("operating_mode", 3)  # to position control: within one turn again
    assert servo.read_register("present_position") == raw(3.5) - TURN
    servo.step(3.5 + 4 * math.pi, 0.0, DT)  # one more turn, counted on from there
    assert servo.read_register("present_position") == raw(3.5)
    servo.write_register("torque_enable", 1)  # torque on in position control: within one turn
    assert servo.read_register("present_position") == raw(3.5) - TURN
    servo.write_register("torque_enable", 0)
    servo.step(3.5 + 6 * math.pi, 0.0, DT)
    servo.reboot()
    assert servo.read_register("present_position") == raw(3.5) - TURN


def test_clear_resets_the_turn_count_only_when_stopped() -> None:
    servo = xl330()
    firmware = servo.firmware
    servo.step(0.3, 0.0, DT)
    servo.write_register("operating_mode", 4)
    servo.step(0.3 + 4 * math.pi, 0.0, DT)
    assert servo.read_register("present_position") == 2244 + 2 * TURN
    servo.step(0.3 + 4 * math.pi, 2.0, DT)  # turning
    assert not firmware.clear_turns(servo)  # type: ignore[attr-defined]
    servo.step(0.3 + 4 * math.pi, 0.0, DT)
    assert firmware.clear_turns(servo)  # type: ignore[attr-defined]
    assert servo.read_register("present_position") == 2244


# -- current control and current-based position control ---------------------------------------
def test_current_mode_holds_the_goal_current() -> None:
    servo = xl330()
    kt = servo.spec.stall_torque_nm / servo.spec.stall_current_a  # 0.354 N·m/A
    servo.write_register("operating_mode", 0)
    assert servo.read_register("goal_current") == 0  # the mode's own goal starts at 0
    servo.write_register("torque_enable", 1)
    servo.write_register("goal_current", 200)  # mA
    torque = [servo.step(0.0, 0.0, DT) for _ in range(100)][-1]  # a blocked shaft
    assert torque == pytest.approx(kt * 0.200, rel=1e-6)
    assert servo.read_register("present_current") == pytest.approx(200, abs=1)
    servo.write_register("goal_current", -150)
    torque = [servo.step(0.0, 0.0, DT) for _ in range(100)][-1]
    assert torque == pytest.approx(-kt * 0.150, rel=1e-6)
    # The loop holds the torque whatever the speed (the PWM makes up the back-EMF).
    torque = [servo.step(0.0, 3.0, DT) for _ in range(20)][-1]
    assert torque + servo.spec.coulomb_friction_nm + 3.0 * servo.spec.viscous_friction_nm_s_per_rad == (
        pytest.approx(-kt * 0.150, rel=1e-6)
    )


def test_current_limit_clamps_what_the_goal_current_asks() -> None:
    servo = xl330()
    kt = servo.spec.stall_torque_nm / servo.spec.stall_current_a
    servo.write_register("operating_mode", 0)
    servo.write_register("goal_current", 500)
    servo.write_register("current_limit", 300)  # EEPROM, torque off: lowered below the goal
    servo.write_register("torque_enable", 1)
    torque = [servo.step(0.0, 0.0, DT) for _ in range(100)][-1]
    assert torque == pytest.approx(kt * 0.300, rel=1e-6)
    assert refused(servo, GOAL_CURRENT, (301).to_bytes(2, "little")) == "limit"  # Data Limit Error


def test_current_based_position_caps_the_torque_at_the_goal_current() -> None:
    kt = 0.52 / 1.47
    capped, free = xl330(), xl330()
    for servo in (capped, free):
        servo.write_register("operating_mode", 5)
        servo.write_register("torque_enable", 1)
        servo.write_register("goal_position", 2048 - 600)  # far below: the loop pushes hard
    capped.write_register("goal_current", 100)
    taus = [[s.step(0.0, 0.0, DT) for _ in range(100)][-1] for s in (capped, free)]
    assert taus[0] == pytest.approx(-kt * 0.100, rel=1e-6)  # the obstacle is pushed with 35 mN·m
    assert capped.read_register("present_current") == pytest.approx(-100, abs=1)
    # With the goal current at the limit (1750 mA > the stall current) the position loop's
    # own torque is what it pushes with, as in extended position mode.
    extended = xl330()
    extended.write_register("operating_mode", 4)
    extended.write_register("torque_enable", 1)
    extended.write_register("goal_position", 2048 - 600)
    tau4 = [extended.step(0.0, 0.0, DT) for _ in range(100)][-1]
    assert taus[1] == pytest.approx(tau4) and abs(tau4) > 5 * kt * 0.100


def test_xl430_has_no_current_modes() -> None:
    servo = VirtualServo(servo_spec("xl430-w250"), 1)
    for mode in (0, 5):
        assert refused(servo, 11, bytes([mode])) == "range"  # Data Range Error
    assert refused(servo, GOAL_CURRENT, (10).to_bytes(2, "little")) == "access"  # no register there
    assert refused(servo, CURRENT_LIMIT, (10).to_bytes(2, "little")) == "access"


def test_switching_the_mode_resets_goals_and_profile() -> None:
    servo = xl330()
    servo.write_register("profile_velocity", 100)
    servo.write_register("profile_acceleration", 10)
    servo.write_register("goal_pwm", 300)
    servo.write_register("goal_current", 400)
    servo.write_register("operating_mode", 5)
    assert servo.read_register("profile_velocity") == servo.read_register("profile_acceleration") == 0
    assert servo.read_register("goal_pwm") == servo.read_register("pwm_limit") == 885
    assert servo.read_register("goal_current") == servo.read_register("current_limit") == 1750
    servo.write_register("operating_mode", 16)
    assert servo.read_register("goal_pwm") == 0  # PWM mode's own goal: 0, not a runaway
    servo.write_register("operating_mode", 5)
    servo.write_register("goal_current", 400)
    servo.write_register("operating_mode", 5)  # the same mode again: nothing is reset
    assert servo.read_register("goal_current") == 400


# -- limits ------------------------------------------------------------------------------------
def test_goal_pwm_limits_the_pwm_outside_pwm_mode() -> None:
    servo = xl330()
    servo.write_register("torque_enable", 1)
    servo.write_register("goal_pwm", 100)
    servo.write_register("goal_position", 2048 + 1500)
    [servo.step(0.0, 0.0, DT) for _ in range(5)]
    assert servo.pwm == pytest.approx(100 / 885)
    assert servo.read_register("present_pwm") == 100
    assert refused(servo, GOAL_PWM, (886).to_bytes(2, "little", signed=True)) == "limit"


def test_velocity_limit_caps_the_profile_velocity(rig: tuple[Plant, VirtualServo]) -> None:
    plant, servo = rig
    servo.write_register("velocity_limit", 40)
    servo.write_register("profile_velocity", 32767)  # in range, beyond the limit
    servo.write_register("torque_enable", 1)
    servo.write_register("goal_position", 2048 + 1500)
    plant.advance_to(0.5)
    (q0,) = plant.joint_positions(["pivot"])
    plant.advance_to(1.0)
    (q1,) = plant.joint_positions(["pivot"])
    assert (q1 - q0) / 0.5 == pytest.approx(40 * DXL_RAD_S_PER_UNIT, rel=0.05)
    assert refused(servo, 104, (41).to_bytes(4, "little")) == "limit"  # Goal Velocity beyond it


def test_goal_position_ranges_by_mode() -> None:
    servo = xl330()
    servo.write_register("max_position_limit", 3000)
    servo.write_register("min_position_limit", 1000)
    assert refused(servo, 116, (3001).to_bytes(4, "little")) == "limit"  # position mode: limits
    servo.write_register("operating_mode", 4)
    servo.write_register("goal_position", 5000)  # extended: the limits are not used
    assert refused(servo, 116, (1_048_576).to_bytes(4, "little")) == "range"  # beyond 256 turns
    servo.write_register("goal_position", -1_048_575)


# -- refusals (Protocol 2.0 error numbers) -------------------------------------------------------
@pytest.mark.parametrize(
    ("address", "data", "kind"),
    [
        pytest.param(14, b"\x00", "access", id="no register at 14"),
        pytest.param(28, b"\x00\x00", "access", id="no register at 28-29"),
        pytest.param(228, b"\x00", "access", id="past the XL330 table"),
        pytest.param(132, bytes(4), "access", id="read-only present position"),
        pytest.param(116, bytes(2), "length", id="half of goal position"),
        pytest.param(118, bytes(2), "length", id="upper half of goal position"),
        pytest.param(112, bytes(6), "length", id="profile velocity and half a goal"),
        pytest.param(11, b"\x02", "range", id="operating mode 2"),
        pytest.param(10, b"\x04", "range", id="time-based profile not modelled"),
        pytest.param(13, b"\x01", "range", id="protocol 1.0 not modelled"),
        pytest.param(20, (1_044_480).to_bytes(4, "little"), "range", id="homing offset"),
        pytest.param(64, b"\x02", "range", id="torque enable 2"),
        pytest.param(68, b"\x03", "range", id="status return level 3"),
        pytest.param(84, (16384).to_bytes(2, "little"), "range", id="position p gain"),
        pytest.param(38, (1751).to_bytes(2, "little"), "range", id="current limit"),
    ],
)
def test_refused_writes_and_their_kinds(address: int, data: bytes, kind: str) -> None:
    assert refused(xl330(), address, data) == kind


def test_eeprom_is_locked_while_torque_is_on() -> None:
    """e-Manual: 'Data in the EEPROM Area can only be written when the value of Torque
    Enable(64) is cleared to 0'; Protocol 2.0: an Access Error."""
    servo = xl330()
    servo.write_register("torque_enable", 1)
    for name, value in (("homing_offset", 0), ("operating_mode", 4), ("drive_mode", 1), ("current_limit", 9)):
        reg = servo.table[name]
        assert refused(servo, reg.address, reg.encode(value)) == "access", name
    servo.write_register("goal_current", 100)  # RAM stays writable
    servo.write_register("torque_enable", 0)
    servo.write_register("homing_offset", 0)


# -- Moving, Moving Status, trajectories ----------------------------------------------------------
def test_moving_and_moving_status_follow_the_profile(rig: tuple[Plant, VirtualServo]) -> None:
    plant, servo = rig
    servo.write_register("profile_velocity", 50)
    servo.write_register("profile_acceleration", 20)
    servo.write_register("torque_enable", 1)
    servo.write_register("goal_position", 2048 + 1000)
    plant.advance_to(0.3)
    status = servo.read_register("moving_status")
    assert servo.read_register("moving") == 1
    assert status & 0x30 == 0x30 and status & 0x02 and not status & 0x01  # trapezoid, ongoing
    trajectory = servo.read_register("position_trajectory")
    assert 2048 < trajectory < 2048 + 1000
    assert servo.read_register("velocity_trajectory") > 0
    plant.advance_to(4.0)
    status = servo.read_register("moving_status")
    assert servo.read_register("moving") == 0
    assert status & 0x01 and not status & 0x02  # in position, profile done
    assert servo.read_register("position_trajectory") == 2048 + 1000
    servo.write_register("goal_position", 2048 + 1010)  # 10 ticks: the velocity is never reached
    assert servo.read_register("moving_status") & 0x30 == 0x20  # triangular
    servo.write_register("profile_acceleration", 0)
    servo.write_register("goal_position", 2048 + 1000)
    assert servo.read_register("moving_status") & 0x30 == 0x10  # rectangular


def test_moving_uses_the_moving_threshold() -> None:
    servo = xl330()
    servo.step(0.0, 9 * DXL_RAD_S_PER_UNIT, DT)
    assert servo.read_register("moving") == 0  # below the default threshold, 10
    servo.step(0.0, 11 * DXL_RAD_S_PER_UNIT, DT)
    assert servo.read_register("moving") == 1
    servo.write_register("moving_threshold", 20)
    assert servo.read_register("moving") == 0


# -- Shutdown --------------------------------------------------------------------------------
def test_shutdown_decides_which_alarms_cut_torque() -> None:
    """Shutdown (63): the alarms that cut torque. With bit 0 (the XL330's e-Manual default, 53)
    an input voltage error does; the twin starts XL330s at 52, as real benches run them above
    the 7.0 V limit (data/servo-logs), so by default it is an alarm only."""
    servo = xl330(supply_v=7.5)  # above Max Voltage Limit 70 (7.0 V)
    assert servo.read_register("shutdown") == 52
    servo.write_register("torque_enable", 1)
    assert servo.torque_enabled and servo.read_register("hardware_error_status") & 1
    servo.write_register("torque_enable", 0)
    servo.write_register("shutdown", 53)
    servo.write_register("torque_enable", 1)
    assert not servo.torque_enabled and servo.read_register("torque_enable") == 0
    assert servo.read_register("hardware_error_status") & 1
    assert refused(servo, 63, b"\x02") == "range"  # bit 1: no alarm has it


# -- indirect addressing ---------------------------------------------------------------------
def test_indirect_data_reads_and_writes_what_it_points_at() -> None:
    servo = xl330()
    servo.step(0.3, 0.0, DT)
    for k in range(4):  # Indirect Data 1..4 -> Present Position, 5..8 -> Goal Position
        servo.write_register(f"indirect_address_{k + 1}", 132 + k)
        servo.write_register(f"indirect_address_{k + 5}", 116 + k)
    assert servo.read(208, 4) == (2244).to_bytes(4, "little")  # Indirect Data 1..4 (XL330: 208)
    servo.write_register("torque_enable", 1)
    servo.write(212, (2300).to_bytes(4, "little"))  # Indirect Data 5..8: a goal
    assert servo.read_register("goal_position") == 2300
    assert raw(servo.goal_rad) == 2300
    with pytest.raises(RegisterError) as info:
        servo.write(208, bytes(4))  # through Indirect Data 1..4: Present Position is read-only
    assert info.value.kind == "access"
    with pytest.raises(RegisterError) as info:
        servo.write(212, bytes(2))  # half a goal through indirect data
    assert info.value.kind == "length"


# -- the Koch leader's XL330-M077 ---------------------------------------------------------------
def test_xl330_m077_reports_its_model_number_and_has_the_current_modes() -> None:
    servo = xl330(model="xl330-m077")
    assert servo.read_register("model_number") == 1190
    assert servo.read_register("velocity_limit") == 1620
    assert servo.read_register("current_limit") == 1750
    servo.write_register("operating_mode", 5)
    servo.write_register("drive_mode", 1)
    assert servo.read_register("operating_mode") == 5


def test_indirect_entries_pointing_at_each_other_hold_the_byte_and_never_recurse() -> None:
    servo = xl330()
    servo.write(168, (209).to_bytes(2, "little"))  # Indirect Address 1 -> Indirect Data 2
    servo.write(170, (208).to_bytes(2, "little"))  # Indirect Address 2 -> Indirect Data 1
    servo.write(208, bytes([1]))  # a client's loop must not crash the servo (RecursionError)
    assert servo.read(208, 1) in (bytes([0]), bytes([1]))
