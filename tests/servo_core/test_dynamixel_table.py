"""The Dynamixel X control tables, model by model, against the ROBOTIS e-Manual's tables."""

from __future__ import annotations

import pytest

from servo_core.catalogue import servo_spec
from servo_core.dynamixel_table import DYNAMIXEL_X, X_MODELS, XRegister, x_model
from servo_core.protocol import DYNAMIXEL

# (address, size, access, EEPROM) of every register the e-Manual lists up to 147, by name.
COMMON = {
    "model_number": (0, 2, "R", True),
    "model_information": (2, 4, "R", True),
    "firmware_version": (6, 1, "R", True),
    "id": (7, 1, "RW", True),
    "baud_rate": (8, 1, "RW", True),
    "return_delay_time": (9, 1, "RW", True),
    "drive_mode": (10, 1, "RW", True),
    "operating_mode": (11, 1, "RW", True),
    "secondary_id": (12, 1, "RW", True),
    "protocol_type": (13, 1, "RW", True),
    "homing_offset": (20, 4, "RW", True),
    "moving_threshold": (24, 4, "RW", True),
    "temperature_limit": (31, 1, "RW", True),
    "max_voltage_limit": (32, 2, "RW", True),
    "min_voltage_limit": (34, 2, "RW", True),
    "pwm_limit": (36, 2, "RW", True),
    "velocity_limit": (44, 4, "RW", True),
    "max_position_limit": (48, 4, "RW", True),
    "min_position_limit": (52, 4, "RW", True),
    "startup_configuration": (60, 1, "RW", True),
    "shutdown": (63, 1, "RW", True),
    "torque_enable": (64, 1, "RW", False),
    "led": (65, 1, "RW", False),
    "status_return_level": (68, 1, "RW", False),
    "registered_instruction": (69, 1, "R", False),
    "hardware_error_status": (70, 1, "R", False),
    "velocity_i_gain": (76, 2, "RW", False),
    "velocity_p_gain": (78, 2, "RW", False),
    "position_d_gain": (80, 2, "RW", False),
    "position_i_gain": (82, 2, "RW", False),
    "position_p_gain": (84, 2, "RW", False),
    "feedforward_2nd_gain": (88, 2, "RW", False),
    "feedforward_1st_gain": (90, 2, "RW", False),
    "bus_watchdog": (98, 1, "RW", False),
    "goal_pwm": (100, 2, "RW", False),
    "goal_velocity": (104, 4, "RW", False),
    "profile_acceleration": (108, 4, "RW", False),
    "profile_velocity": (112, 4, "RW", False),
    "goal_position": (116, 4, "RW", False),
    "realtime_tick": (120, 2, "R", False),
    "moving": (122, 1, "R", False),
    "moving_status": (123, 1, "R", False),
    "present_pwm": (124, 2, "R", False),
    "present_velocity": (128, 4, "R", False),
    "present_position": (132, 4, "R", False),
    "velocity_trajectory": (136, 4, "R", False),
    "position_trajectory": (140, 4, "R", False),
    "present_input_voltage": (144, 2, "R", False),
    "present_temperature": (146, 1, "R", False),
    "backup_ready": (147, 1, "R", False),
}
CURRENT = {
    "current_limit": (38, 2, "RW", True),
    "goal_current": (102, 2, "RW", False),
    "present_current": (126, 2, "R", False),
}
MODELS = {"xl430-w250": 1060, "xm430-w350": 1020, "xl330-m288": 1200, "xl330-m077": 1190}


def layout(model: str) -> dict[str, tuple[int, int, str, bool]]:
    table = x_model(MODELS[model]).table
    return {r.name: (r.address, r.size, r.access, r.eeprom) for r in table.registers}


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_register_of_the_e_manual_is_there(model: str) -> None:
    have = layout(model)
    for name, where in COMMON.items():
        assert have[name] == where, name
    if model == "xl430-w250":
        assert have["present_load"] == (126, 2, "R", False)
        assert not set(CURRENT) & set(have)
    else:
        for name, where in CURRENT.items():
            assert have[name] == where, name
    assert ("pwm_slope" in have) == model.startswith("xl330")
    if model.startswith("xl330"):
        assert have["pwm_slope"] == (62, 1, "RW", True)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_registers_never_overlap(model: str) -> None:
    owner: dict[int, str] = {}
    for reg in x_model(MODELS[model]).table.registers:
        for a in range(reg.address, reg.address + reg.size):
            assert a not in owner, f"{reg.name} overlaps {owner.get(a)} at {a}"
            owner[a] = reg.name
    # The gaps the e-Manual leaves (e.g. 14..19, 28..30, 71..75) hold nothing.
    for gap in (14, 19, 28, 30, 56, 59, 66, 67, 71, 75, 86, 92, 97, 148, 167):
        assert gap not in owner


def test_the_indirect_areas() -> None:
    xl430, xl330 = layout("xl430-w250"), layout("xl330-m288")
    # X430: 56 entries, 1..28 at 168/224 and 29..56 at 578/634 (above 255: Protocol 2.0 only).
    assert xl430["indirect_address_1"][:2] == (168, 2) and xl430["indirect_data_1"][:2] == (224, 1)
    assert xl430["indirect_address_28"][:2] == (222, 2) and xl430["indirect_data_28"][:2] == (251, 1)
    assert xl430["indirect_address_29"][:2] == (578, 2) and xl430["indirect_data_56"][:2] == (661, 1)
    assert x_model(1060).table.size == 662
    # XL330: 20 entries, 168..207 and 208..227.
    assert xl330["indirect_address_20"][:2] == (206, 2) and xl330["indirect_data_20"][:2] == (227, 1)
    assert "indirect_address_21" not in xl330
    assert x_model(1200).table.size == 228
    reg = x_model(1200).table["indirect_address_1"]
    assert isinstance(reg, XRegister) and (reg.minimum, reg.maximum) == (64, 227)


@pytest.mark.parametrize(
    ("model", "name", "lo", "hi"),
    [
        ("xl330-m288", "current_limit", 0, 1750),
        ("xm430-w350", "current_limit", 0, 1193),
        ("xl330-m077", "velocity_limit", 0, 2047),
        ("xl430-w250", "velocity_limit", 0, 1023),
        ("xl430-w250", "homing_offset", -1_044_479, 1_044_479),
        ("xl430-w250", "max_position_limit", 0, 4095),
        ("xl330-m288", "drive_mode", 0, 5),
        ("xl430-w250", "drive_mode", 0, 13),
        ("xl430-w250", "profile_velocity", 0, 32767),
        ("xl430-w250", "position_p_gain", 0, 16383),
        ("xl330-m288", "max_voltage_limit", 31, 70),
        ("xl430-w250", "max_voltage_limit", 60, 140),
        ("xl430-w250", "torque_enable", 0, 1),
        ("xl430-w250", "id", 0, 252),
    ],
)
def test_ranges_follow_the_e_manual(model: str, name: str, lo: int, hi: int) -> None:
    reg = x_model(MODELS[model]).table[name]
    assert isinstance(reg, XRegister)
    assert (reg.minimum, reg.maximum) == (lo, hi)


def test_goals_are_bounded_by_their_limit_registers() -> None:
    table = x_model(1200).table
    limits = {r.name: r.limit for r in table.registers if isinstance(r, XRegister) and r.limit}
    assert limits == {
        "goal_pwm": "pwm_limit",
        "goal_current": "current_limit",
        "goal_velocity": "velocity_limit",
    }
    assert x_model(1060).table["goal_pwm"].limit == "pwm_limit"  # type: ignore[attr-defined]


def test_models_have_their_operating_modes_and_current_units() -> None:
    assert sorted(x_model(1060).modes) == [1, 3, 4, 16]  # XL430: no current sensing
    for number in (1200, 1190, 1020):
        assert sorted(x_model(number).modes) == [0, 1, 3, 4, 5, 16]
    assert x_model(1060).current_unit_a is None
    assert x_model(1200).current_unit_a == pytest.approx(0.001)
    assert x_model(1020).current_unit_a == pytest.approx(0.00269)
    # e-Manual initial values: Shutdown 52 (the XL330's 53 is not kept: see dynamixel_table),
    # Velocity Limit per model.
    assert x_model(1060).defaults["shutdown"] == 52 and x_model(1200).defaults["shutdown"] == 52
    assert x_model(1190).defaults["velocity_limit"] == 1620
    assert x_model(1200).defaults["velocity_limit"] == 445


def test_an_unknown_model_gets_the_series_table() -> None:
    generic = x_model(4242)
    assert generic.table is DYNAMIXEL_X is DYNAMIXEL.table
    assert sorted(generic.modes) == [1, 3, 4, 16]


def test_the_catalogue_models_map_to_their_tables() -> None:
    for name, number in MODELS.items():
        assert servo_spec(name).model_number == number
        assert number in X_MODELS
