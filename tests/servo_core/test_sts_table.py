"""The Feetech STS memory table (servo_core/feetech_table.py) against Feetech's documents and the
register names LeRobot 0.4.4's FeetechMotorsBus uses (its STS_SMS_SERIES_CONTROL_TABLE)."""

from __future__ import annotations

import pytest

from servo_core.feetech_table import FEETECH_STS, STS_RANGES
from servo_core.protocol import FEETECH

# LeRobot 0.4.4 register name -> (address, size) of an STS3215 (written out by hand).
LEROBOT_STS: dict[str, tuple[int, int]] = {
    "Firmware_Major_Version": (0, 1),
    "Firmware_Minor_Version": (1, 1),
    "Model_Number": (3, 2),
    "ID": (5, 1),
    "Baud_Rate": (6, 1),
    "Return_Delay_Time": (7, 1),
    "Response_Status_Level": (8, 1),
    "Min_Position_Limit": (9, 2),
    "Max_Position_Limit": (11, 2),
    "Max_Temperature_Limit": (13, 1),
    "Max_Voltage_Limit": (14, 1),
    "Min_Voltage_Limit": (15, 1),
    "Max_Torque_Limit": (16, 2),
    "Phase": (18, 1),
    "Unloading_Condition": (19, 1),
    "LED_Alarm_Condition": (20, 1),
    "P_Coefficient": (21, 1),
    "D_Coefficient": (22, 1),
    "I_Coefficient": (23, 1),
    "Minimum_Startup_Force": (24, 2),
    "CW_Dead_Zone": (26, 1),
    "CCW_Dead_Zone": (27, 1),
    "Protection_Current": (28, 2),
    "Angular_Resolution": (30, 1),
    "Homing_Offset": (31, 2),
    "Operating_Mode": (33, 1),
    "Protective_Torque": (34, 1),
    "Protection_Time": (35, 1),
    "Overload_Torque": (36, 1),
    "Velocity_closed_loop_P_proportional_coefficient": (37, 1),
    "Over_Current_Protection_Time": (38, 1),
    "Velocity_closed_loop_I_integral_coefficient": (39, 1),
    "Torque_Enable": (40, 1),
    "Acceleration": (41, 1),
    "Goal_Position": (42, 2),
    "Goal_Time": (44, 2),
    "Goal_Velocity": (46, 2),
    "Torque_Limit": (48, 2),
    "Lock": (55, 1),
    "Present_Position": (56, 2),
    "Present_Velocity": (58, 2),
    "Present_Load": (60, 2),
    "Present_Voltage": (62, 1),
    "Present_Temperature": (63, 1),
    "Status": (65, 1),
    "Moving": (66, 1),
    "Present_Current": (69, 2),
    "Goal_Position_2": (71, 2),
    "Moving_Velocity": (80, 1),
    "Moving_Velocity_Threshold": (80, 1),
    "DTs": (81, 1),
    "Velocity_Unit_factor": (82, 1),
    "Hts": (83, 1),
    "Maximum_Velocity_Limit": (84, 1),
    "Maximum_Acceleration": (85, 1),
    "Acceleration_Multiplier ": (86, 1),  # sic: LeRobot's key ends with a space
}
# The same registers under the twin's names.
TWIN_NAME = {
    "Response_Status_Level": "status_return_level",
    "Max_Temperature_Limit": "temperature_limit",
    "P_Coefficient": "position_p_gain",
    "D_Coefficient": "position_d_gain",
    "I_Coefficient": "position_i_gain",
    "Velocity_closed_loop_P_proportional_coefficient": "velocity_p_gain",
    "Over_Current_Protection_Time": "overcurrent_protection_time",
    "Velocity_closed_loop_I_integral_coefficient": "velocity_i_gain",
    "Goal_Velocity": "goal_speed",
    "Present_Velocity": "present_speed",
    "Status": "hardware_error_status",
    "Moving_Velocity": "moving_velocity_threshold",
    "Firmware_Major_Version": "firmware_major",
    "Firmware_Minor_Version": "firmware_minor",
}


def twin_name(lerobot: str) -> str:
    return TWIN_NAME.get(lerobot, lerobot.strip().lower())


def test_lerobot_names_all_56_registers() -> None:
    assert len(LEROBOT_STS) == 56


@pytest.mark.parametrize("name", sorted(LEROBOT_STS))
def test_every_lerobot_register_is_a_twin_register_at_its_address(name: str) -> None:
    reg = FEETECH_STS[twin_name(name)]
    assert (reg.address, reg.size) == LEROBOT_STS[name]
    assert reg.address + reg.size <= FEETECH_STS.size


def test_table_spans_addresses_0_to_86_without_overlaps() -> None:
    assert FEETECH_STS.size == 87
    owner: dict[int, str] = {}
    for reg in FEETECH_STS.registers:
        for a in range(reg.address, reg.address + reg.size):
            assert a not in owner, f"{reg.name} overlaps {owner.get(a)} at {a}"
            owner[a] = reg.name
    gaps = sorted(set(range(FEETECH_STS.size)) - set(owner))
    assert gaps == [50, 51, 52, 53, 54, 73, 74, 75, 76, 77, 78, 79]


def test_areas_follow_feetechs_table() -> None:
    eeprom = {r.name for r in FEETECH_STS.registers if r.eeprom}
    ram = {r.name for r in FEETECH_STS.registers if not r.eeprom}
    assert all(
        5 <= FEETECH_STS[n].address <= 39 or FEETECH_STS[n].address <= 4 or FEETECH_STS[n].address >= 80
        for n in eeprom
    )
    assert all(40 <= FEETECH_STS[n].address <= 72 for n in ram)
    read_only = {r.name for r in FEETECH_STS.registers if r.access == "R"}
    assert read_only == {
        "firmware_major",
        "firmware_minor",
        "endianness",
        "model_number",
        "present_position",
        "present_speed",
        "present_load",
        "present_voltage",
        "present_temperature",
        "async_write_flag",
        "hardware_error_status",
        "moving",
        "present_goal",
        "present_current",
        "goal_position_2",
    }
    # LeRobot writes Maximum Acceleration (85) in configure(): the factory area takes writes.
    assert FEETECH_STS["maximum_acceleration"].access == "RW"


@pytest.mark.parametrize(
    ("name", "sign_bit"),
    [
        ("homing_offset", 11),
        ("goal_position", 15),
        ("goal_speed", 15),
        ("present_position", 15),
        ("present_speed", 15),
        ("present_load", 10),
        ("present_goal", 15),
        ("present_current", 15),
    ],
)
def test_sign_magnitude_fields(name: str, sign_bit: int) -> None:
    reg = FEETECH_STS[name]
    assert reg.sign_bit == sign_bit and not reg.signed
    assert reg.encode(-5) == ((1 << sign_bit) | 5).to_bytes(reg.size, "little")
    assert reg.decode(((1 << sign_bit) | 5).to_bytes(reg.size, "little")) == -5


def test_homing_offset_bytes_as_lerobot_writes_them() -> None:
    reg = FEETECH_STS["homing_offset"]
    assert reg.encode(-1238) == bytes([0xD6, 0x0C])  # 1238 = 0x4D6, sign bit 11 = 0x800
    assert reg.encode(553) == bytes([0x29, 0x02])
    assert (reg.lowest, reg.highest) == (-2047, 2047)


def test_ranges_name_writable_registers() -> None:
    for name, (lo, hi) in STS_RANGES.items():
        reg = FEETECH_STS[name]
        assert reg.access == "RW", name
        assert reg.lowest <= lo <= hi <= reg.highest, name
    assert STS_RANGES["operating_mode"] == (0, 3)  # 0 position, 1 speed, 2 PWM, 3 step
    assert STS_RANGES["lock"] == (0, 1)
    assert STS_RANGES["id"] == (0, 253)


def test_protocol_uses_the_table_and_its_state_block() -> None:
    assert FEETECH.table is FEETECH_STS
    assert (FEETECH.state_address, FEETECH.state_length) == (56, 15)  # 56 .. 70
