"""The servo catalogue and the virtual servo's firmware, as seen through its control table."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import replace
from importlib import resources

import pytest
import yaml

from servo_core.catalogue import ServoSpec, catalogue, servo_spec
from servo_core.errors import ConfigError, TwinError
from sim_models.plant import Mount, Plant
from sim_models.robots import pendulum_urdf
from sim_models.servo.device import RegisterError, VirtualServo

G = 9.81
CENTRE = 2048
RAD_PER_TICK = 2.0 * math.pi / 4096
DXL_RAD_S_PER_UNIT = 0.229 * 2.0 * math.pi / 60.0
DT = 0.001
OVERHEAT_BIT = 4  # Hardware Error Status bit 2 (Dynamixel X; Feetech STS alike)

# One model of each protocol for the firmware tests.
PROTOCOL_MODELS = ["xl430-w250", "sts3215"]


def ticks(angle_rad: float) -> int:
    return CENTRE + math.floor(angle_rad / RAD_PER_TICK + 0.5)


# -- catalogue -------------------------------------------------------------------


def catalogue_files() -> dict[str, dict[str, object]]:
    folder = resources.files("servo_core") / "catalogue"
    out = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".yaml"):
            out[entry.name] = yaml.safe_load(entry.read_text(encoding="utf-8"))
    return out


def test_catalogue_has_one_file_per_model() -> None:
    files = catalogue_files()
    assert len(files) >= 5
    assert sorted(raw["name"] for raw in files.values()) == sorted(catalogue())
    assert {"xl430-w250", "xm430-w350", "xl330-m288", "sts3215", "sts3250"} <= set(catalogue())


@pytest.mark.parametrize("filename", sorted(catalogue_files()))
def test_every_catalogue_value_names_its_source(filename: str) -> None:
    raw = catalogue_files()[filename]
    numeric = {k: v for k, v in raw.items() if k not in ("name", "protocol")}
    assert numeric, "no values"
    for key, entry in numeric.items():
        assert isinstance(entry, dict) and set(entry) == {"value", "source"}, key
        assert isinstance(entry["value"], int | float) and not isinstance(entry["value"], bool), key
        assert isinstance(entry["source"], str) and entry["source"].strip(), f"{key}: empty source"
    # Every field of the parsed spec came from a sourced entry in this file.
    spec = catalogue()[raw["name"]]
    for key, entry in numeric.items():
        assert getattr(spec, key) == entry["value"], key


@pytest.mark.parametrize(
    ("model", "number", "protocol"),
    [
        ("xl430-w250", 1060, "dynamixel"),
        ("xm430-w350", 1020, "dynamixel"),
        ("xl330-m288", 1200, "dynamixel"),
        ("sts3215", 777, "feetech"),
    ],
)
def test_model_numbers_match_servo_facts(model: str, number: int, protocol: str) -> None:
    spec = servo_spec(model)
    assert spec.model_number == number
    assert spec.protocol == protocol
    # and the virtual device reports it from its control table
    assert VirtualServo(spec, 1).read_register("model_number") == number


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        servo_spec("xl999-nope")
    message = str(info.value)
    assert "xl999-nope" in message
    for name in catalogue():
        assert name in message


def test_datasheet_figures_are_self_consistent() -> None:
    for spec in catalogue().values():
        assert spec.stall_torque_nm > 0 and spec.no_load_speed_rpm > 0
        assert 0 < spec.coulomb_friction_nm < 0.1 * spec.stall_torque_nm
        assert spec.resolution_ticks == 4096
        assert spec.no_load_speed_rad_s == pytest.approx(spec.no_load_speed_rpm * math.pi / 30)


# -- control table access ----------------------------------------------------------


@pytest.mark.parametrize("model", PROTOCOL_MODELS)
@pytest.mark.parametrize("register", ["present_position", "model_number", "present_temperature"])
def test_writing_read_only_register_raises(model: str, register: str) -> None:
    servo = VirtualServo(servo_spec(model), 1)
    reg = servo.table[register]
    before = bytes(servo.regs)
    with pytest.raises(RegisterError, match=register):
        servo.write(reg.address, bytes(reg.size))
    assert bytes(servo.regs) == before
    assert issubclass(RegisterError, TwinError)


@pytest.mark.parametrize("model", PROTOCOL_MODELS)
def test_access_outside_table_raises(model: str) -> None:
    servo = VirtualServo(servo_spec(model), 1)
    size = servo.table.size
    with pytest.raises(RegisterError):
        servo.write(size - 1, b"\x00\x00")
    with pytest.raises(RegisterError):
        servo.read(size - 1, 2)
    with pytest.raises(RegisterError):
        servo.read(-1, 1)


@pytest.mark.parametrize("model", [m for m in PROTOCOL_MODELS if m.startswith("x")])
def test_eeprom_locked_while_torque_on(model: str) -> None:
    """Dynamixel guards EEPROM with torque; Feetech with Lock (see the sts firmware tests)."""
    servo = VirtualServo(servo_spec(model), 1)
    other_mode = 16 if servo.spec.protocol == "dynamixel" else 2  # PWM
    servo.write_register("operating_mode", other_mode)  # torque off: EEPROM writable
    assert servo.read_register("operating_mode") == other_mode
    servo.write_register("operating_mode", 3 if model.startswith("xl") else 0)
    servo.write_register("torque_enable", 1)
    assert servo.torque_enabled
    before = servo.read_register("operating_mode")
    with pytest.raises(RegisterError, match="operating_mode"):
        servo.write_register("operating_mode", 1)
    with pytest.raises(RegisterError):
        servo.write_register("id", 7)
    assert servo.read_register("operating_mode") == before
    assert servo.servo_id == 1
    # RAM registers stay writable
    servo.write_register("led" if model.startswith("xl") else "acceleration", 1)
    servo.write_register("torque_enable", 0)
    servo.write_register("id", 7)
    assert servo.servo_id == 7


@pytest.fixture
def light_rig(request: pytest.FixtureRequest) -> Iterator[tuple[Plant, VirtualServo]]:
    """A servo on a light pendulum without gravity, starting at 0.3 rad."""
    spec = servo_spec(request.param)
    servo = VirtualServo(spec, 1)
    plant = Plant(
        pendulum_urdf(0.05, 0.05), [Mount("pivot", servo)], gravity=0.0, initial_positions={"pivot": 0.3}
    )
    with plant:
        yield plant, servo


@pytest.mark.parametrize("light_rig", PROTOCOL_MODELS, indirect=True)
def test_torque_enable_holds_present_position(light_rig: tuple[Plant, VirtualServo]) -> None:
    plant, servo = light_rig
    assert servo.read_register("goal_position") == CENTRE  # the factory goal, 0.3 rad away
    assert servo.read_register("present_position") == ticks(0.3)
    servo.write_register("torque_enable", 1)
    # goal := present: no jump towards the stale goal
    assert servo.read_register("goal_position") == servo.read_register("present_position") == ticks(0.3)
    for k in range(1, 11):
        plant.advance_to(0.05 * k)
        (q,) = plant.joint_positions(["pivot"])
        assert abs(q - 0.3) < 3 * RAD_PER_TICK, f"moved to {q:.4f} rad at t={plant.time:.2f}"


@pytest.mark.parametrize("model", PROTOCOL_MODELS)
def test_present_position_is_quantised_to_encoder_ticks(model: str) -> None:
    servo = VirtualServo(servo_spec(model), 1)
    for q in [0.0, 1e-5, 0.3, -0.3, 1.2345, -2.5, 0.49 * RAD_PER_TICK, -0.49 * RAD_PER_TICK]:
        servo.step(q, 0.0, DT)  # torque off: the servo only samples its shaft
        reading = servo.read_register("present_position")
        assert reading == ticks(q)
        assert abs((reading - CENTRE) * RAD_PER_TICK - q) <= RAD_PER_TICK / 2 + 1e-12
    # angles within one tick read alike: the encoder cannot see finer
    centre = 65 * RAD_PER_TICK
    readings = set()
    for i in range(-9, 10):
        servo.step(centre + i * 0.05 * RAD_PER_TICK, 0.0, DT)
        readings.add(servo.read_register("present_position"))
    assert readings == {CENTRE + 65}


# -- overheat --------------------------------------------------------------------


@pytest.fixture
def hot_rig(request: pytest.FixtureRequest) -> Iterator[tuple[Plant, VirtualServo]]:
    """A servo with a tiny thermal mass, stalled by a load of twice its stall torque."""
    spec = replace(servo_spec(request.param), thermal_capacity_j_per_k=0.05)
    servo = VirtualServo(spec, 1)
    mass = 2.0 * spec.stall_torque_nm / (G * 0.1)
    with Plant(pendulum_urdf(0.1, mass), [Mount("pivot", servo)]) as plant:
        yield plant, servo


def _stall_until_overheat(plant: Plant, servo: VirtualServo) -> float:
    servo.write_register("torque_enable", 1)
    servo.write_register("goal_position", CENTRE + 1000)
    t = 0.0
    while servo.torque_enabled:
        t += 0.01
        assert t < 5.0, f"no overheat; temperature {servo.temperature_c:.1f} °C"
        plant.advance_to(t)
    return t


@pytest.mark.parametrize("hot_rig", PROTOCOL_MODELS, indirect=True)
def test_overheat_cuts_torque_and_raises_alarm(hot_rig: tuple[Plant, VirtualServo]) -> None:
    plant, servo = hot_rig
    assert servo.read_register("present_temperature") == 25
    assert servo.read_register("hardware_error_status") == 0
    tripped_at = _stall_until_overheat(plant, servo)
    limit = servo.read_register("temperature_limit")

    assert servo.read_register("torque_enable") == 0
    assert servo.read_register("hardware_error_status") & OVERHEAT_BIT
    assert servo.read_register("present_temperature") >= limit
    # torque is really gone: the stalled arm (held near 30°) falls back under gravity
    (q_trip,) = plant.joint_positions(["pivot"])
    assert q_trip > math.radians(20)
    lowest = q_trip
    for k in range(1, 31):
        plant.advance_to(tripped_at + 0.01 * k)
        lowest = min(lowest, plant.joint_positions(["pivot"])[0])
    assert lowest < math.radians(5)

    servo.reboot()
    assert servo.read_register("hardware_error_status") == 0
    assert servo.read_register("torque_enable") == 0


@pytest.mark.parametrize("hot_rig", ["xl430-w250"], indirect=True)
def test_overheat_alarm_latches_until_reboot(hot_rig: tuple[Plant, VirtualServo]) -> None:
    """Dynamixel X: after a hardware error Torque Enable cannot be set until a reboot."""
    plant, servo = hot_rig
    tripped_at = _stall_until_overheat(plant, servo)
    peak = servo.read_register("present_temperature")
    plant.advance_to(tripped_at + 3.0)  # thermal time constant 6 K/W x 0.05 J/K = 0.3 s
    cooled = servo.read_register("present_temperature")
    assert cooled < peak and cooled < servo.read_register("temperature_limit") - 10

    servo.write_register("torque_enable", 1)
    assert not servo.torque_enabled
    assert servo.read_register("torque_enable") == 0
    assert servo.read_register("hardware_error_status") & OVERHEAT_BIT

    servo.reboot()
    assert servo.read_register("hardware_error_status") == 0
    servo.write_register("torque_enable", 1)
    assert servo.torque_enabled
    assert servo.read_register("torque_enable") == 1


# -- backlash --------------------------------------------------------------------


def _torque_sequence(spec: ServoSpec, goals: list[int], steps_each: int) -> list[list[float]]:
    """Output torque, step by step, for each goal in turn, with the shaft held still."""
    servo = VirtualServo(spec, 1)
    servo.write_register("torque_enable", 1)
    runs = []
    for goal in goals:
        servo.write_register("goal_position", goal)
        runs.append([servo.step(0.0, 0.0, DT) for _ in range(steps_each)])
    return runs


def test_backlash_delays_torque_reversal() -> None:
    spec = servo_spec("sts3215")
    assert spec.backlash_deg == pytest.approx(0.95)
    up, down = _torque_sequence(spec, [CENTRE + 1000, CENTRE - 1000], 20)
    # Crossing the whole gap at the free-running speed takes backlash / no-load speed.
    crossing_steps = math.radians(spec.backlash_deg) / spec.no_load_speed_rad_s / DT
    assert crossing_steps > 2
    for run, sign in ((up, 1.0), (down, -1.0)):
        zeros = next(i for i, tau in enumerate(run) if tau != 0.0)
        assert abs(zeros - crossing_steps) <= 1.0, f"{zeros} zero steps, expected ≈{crossing_steps:.1f}"
        assert all(tau == 0.0 for tau in run[:zeros])
        # then the full stall torque (held shaft, saturated loop) comes through at once
        assert all(tau == pytest.approx(sign * spec.stall_torque_nm) for tau in run[zeros:])

    # Without backlash the reversal is transmitted at the first step.
    tight = replace(spec, backlash_deg=0.0)
    up, down = _torque_sequence(tight, [CENTRE + 1000, CENTRE - 1000], 5)
    assert up[0] == pytest.approx(spec.stall_torque_nm)
    assert down[0] == pytest.approx(-spec.stall_torque_nm)


def test_backlash_gap_stays_closed_without_reversal() -> None:
    """The gap opens only when the torque reverses: a pause and a new push the same way pass at once."""
    spec = servo_spec("sts3215")
    servo = VirtualServo(spec, 1)
    servo.write_register("torque_enable", 1)
    servo.write_register("goal_position", CENTRE + 1000)
    assert [servo.step(0.0, 0.0, DT) for _ in range(10)][-1] > 0
    servo.write_register("goal_position", CENTRE)  # on goal: no torque at all
    assert [servo.step(0.0, 0.0, DT) for _ in range(5)] == [0.0] * 5
    servo.write_register("goal_position", CENTRE + 500)
    assert servo.step(0.0, 0.0, DT) == pytest.approx(spec.stall_torque_nm)


# -- profile velocity ------------------------------------------------------------


@pytest.fixture
def profile_rig(request: pytest.FixtureRequest) -> Iterator[tuple[Plant, VirtualServo]]:
    servo = VirtualServo(servo_spec(getattr(request, "param", "xl430-w250")), 1)
    with Plant(pendulum_urdf(0.05, 0.05), [Mount("pivot", servo)], gravity=0.0) as plant:
        yield plant, servo


@pytest.mark.parametrize("profile_units", [10, 40])
def test_profile_velocity_limits_speed(profile_rig: tuple[Plant, VirtualServo], profile_units: int) -> None:
    plant, servo = profile_rig
    limit = profile_units * DXL_RAD_S_PER_UNIT
    assert limit < 0.2 * servo.spec.no_load_speed_rad_s
    servo.write_register("profile_velocity", profile_units)
    servo.write_register("torque_enable", 1)
    servo.write_register("goal_position", CENTRE + 1024)  # 90° away
    plant.advance_to(0.3)
    (q0,) = plant.joint_positions(["pivot"])
    plant.advance_to(1.3)
    (q1,) = plant.joint_positions(["pivot"])
    assert (q1 - q0) / 1.0 == pytest.approx(limit, rel=0.05)
    assert servo.read_register("present_velocity") == pytest.approx(profile_units, abs=2)
    assert servo.read_register("moving") == 1


@pytest.mark.parametrize("profile_rig", ["sts3215"], indirect=True)
def test_feetech_goal_speed_limits_speed(profile_rig: tuple[Plant, VirtualServo]) -> None:
    plant, servo = profile_rig
    servo.write_register("goal_speed", 200)  # ticks/s
    servo.write_register("torque_enable", 1)
    servo.write_register("goal_position", CENTRE + 1024)
    plant.advance_to(0.3)
    (q0,) = plant.joint_positions(["pivot"])
    plant.advance_to(1.3)
    (q1,) = plant.joint_positions(["pivot"])
    assert (q1 - q0) / 1.0 == pytest.approx(200 * RAD_PER_TICK, rel=0.05)
    assert servo.read_register("present_speed") == pytest.approx(200, rel=0.05)


def test_profile_acceleration_ramps_speed(profile_rig: tuple[Plant, VirtualServo]) -> None:
    plant, servo = profile_rig
    acc_units, vel_units = 10, 100  # 214.577 rev/min² per unit; 0.229 rpm per unit
    servo.write_register("profile_velocity", vel_units)
    servo.write_register("profile_acceleration", acc_units)
    servo.write_register("torque_enable", 1)
    servo.write_register("goal_position", CENTRE + 2000)
    accel = acc_units * 214.577 * 2.0 * math.pi / 3600.0  # rad/s²
    plant.advance_to(0.3)
    v0 = servo.read_register("present_velocity") * DXL_RAD_S_PER_UNIT
    plant.advance_to(0.6)
    v1 = servo.read_register("present_velocity") * DXL_RAD_S_PER_UNIT
    assert (v1 - v0) / 0.3 == pytest.approx(accel, rel=0.1)
    plant.advance_to(1.2)  # past the ramp (v/a = 0.76 s): cruising at the profile velocity
    assert servo.read_register("present_velocity") == pytest.approx(vel_units, abs=3)


def test_unprofiled_move_is_much_faster(profile_rig: tuple[Plant, VirtualServo]) -> None:
    plant, servo = profile_rig
    servo.write_register("torque_enable", 1)
    servo.write_register("goal_position", CENTRE + 1024)
    plant.advance_to(1.0)
    assert abs(servo.read_register("present_position") - (CENTRE + 1024)) <= 10
    assert servo.read_register("moving") == 0


# -- supply voltage ------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        "xl430-w250",
        "xm430-w350",
        "xl330-m288",
        "sts3215",
        "sts3250",
    ],
)
def test_supply_voltage_lies_within_the_voltage_limits(model: str) -> None:
    """Present voltage and the min/max voltage limits share one unit (0.1 V on both vendors)."""
    servo = VirtualServo(servo_spec(model), 1)
    present = servo.read_register(
        "present_input_voltage" if servo.spec.protocol == "dynamixel" else "present_voltage"
    )
    assert present == round(servo.spec.nominal_voltage_v * 10)
    assert servo.read_register("min_voltage_limit") < present < servo.read_register("max_voltage_limit")


# -- operating modes and limits the firmware should honour ----------------------------


@pytest.mark.parametrize("profile_rig", ["xl430-w250"], indirect=True)
def test_dynamixel_velocity_mode_follows_goal_velocity(profile_rig: tuple[Plant, VirtualServo]) -> None:
    plant, servo = profile_rig
    servo.write_register("operating_mode", 1)
    servo.write_register("goal_velocity", 50)  # 11.45 rpm
    servo.write_register("torque_enable", 1)
    plant.advance_to(1.0)
    assert servo.read_register("present_velocity") == pytest.approx(50, abs=3)


@pytest.mark.parametrize("profile_rig", ["xl430-w250"], indirect=True)
def test_position_mode_stays_within_position_limits(profile_rig: tuple[Plant, VirtualServo]) -> None:
    plant, servo = profile_rig
    assert servo.read_register("operating_mode") == 3
    servo.write_register("torque_enable", 1)
    with contextlib.suppress(RegisterError):  # refusing the write is as good as clamping it
        servo.write_register("goal_position", 6000)
    plant.advance_to(3.0)
    assert servo.read_register("present_position") <= servo.read_register("max_position_limit") + 5


@pytest.mark.parametrize(("model", "mode"), [("xl430-w250", 0), ("xl430-w250", 5), ("sts3215", 3)])
def test_modes_the_twin_does_not_model_are_refused(model: str, mode: int) -> None:
    servo = VirtualServo(servo_spec(model), 1)
    before = servo.read_register("operating_mode")
    with pytest.raises(RegisterError, match=f"operating mode {mode} is not modelled"):
        servo.write_register("operating_mode", mode)
    assert servo.read_register("operating_mode") == before


def test_feetech_goal_is_clamped_to_the_angle_limits() -> None:
    servo = VirtualServo(servo_spec("sts3215"), 1)
    servo.write_register("max_position_limit", 3000)
    servo.write_register("goal_position", 3500)
    assert servo.read_register("goal_position") == 3000


def test_feetech_wheel_mode_follows_goal_speed() -> None:
    from sim_models.robots import pendulum_urdf

    servo = VirtualServo(servo_spec("sts3215"), 1)
    plant = Plant(pendulum_urdf(0.05, 0.05), [Mount("pivot", servo)], gravity=0.0)
    try:
        servo.write_register("operating_mode", 1)
        servo.write_register("goal_speed", -1000)  # ticks/s, sign at bit 15
        servo.write_register("torque_enable", 1)
        plant.advance_to(1.0)
        assert servo.read_register("present_speed") == pytest.approx(-1000, abs=20)
    finally:
        plant.close()


def test_supply_outside_the_voltage_limits_raises_an_alarm_but_keeps_torque() -> None:
    servo = VirtualServo(servo_spec("xl430-w250"), 1, supply_v=16.0)
    servo.write_register("torque_enable", 1)
    assert servo.torque_enabled
    assert servo.read_register("hardware_error_status") & 1  # input voltage
    assert servo.read_register("present_input_voltage") == 160
    ok = VirtualServo(servo_spec("xl430-w250"), 1, supply_v=11.1)
    assert ok.read_register("hardware_error_status") == 0


def test_dynamixel_present_voltage_is_not_capped_at_one_byte() -> None:
    servo = VirtualServo(servo_spec("xm430-w350"), 1, supply_v=30.0)
    assert servo.read_register("present_input_voltage") == 300


def test_a_command_latency_delays_when_the_position_loop_acts_on_a_goal() -> None:
    import dataclasses

    spec = dataclasses.replace(servo_spec("xl330-m288"), command_latency_s=0.02)
    servo = VirtualServo(spec, 1)
    servo.write_register("torque_enable", 1)
    servo.write_register("goal_position", 2048 + 200)
    for _ in range(15):
        servo.step(0.0, 0.0, 0.001)
    assert servo.pwm == 0.0, "15 ms after the write the loop still holds the old goal"
    for _ in range(10):
        servo.step(0.0, 0.0, 0.001)
    assert servo.pwm > 0.0, "after 20 ms it drives toward the new one"
