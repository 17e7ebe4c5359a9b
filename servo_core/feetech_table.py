"""The Feetech STS series memory table (STS3215/STS3250), address by address."""

from __future__ import annotations

from servo_core.control_table import ControlTable, reg

__all__ = ["FEETECH_STS"]

FEETECH_STS = ControlTable(
    "feetech",
    71,
    (
        reg("firmware_major", 0, 1, "R", eeprom=True),
        reg("firmware_minor", 1, 1, "R", eeprom=True),
        reg("model_number", 3, 2, "R", eeprom=True),
        reg("id", 5, 1, eeprom=True),
        reg("baud_rate", 6, 1, eeprom=True),
        reg("return_delay_time", 7, 1, eeprom=True, unit="2 us"),
        reg("status_return_level", 8, 1, eeprom=True),
        reg("min_position_limit", 9, 2, eeprom=True, unit="tick"),
        reg("max_position_limit", 11, 2, eeprom=True, unit="tick"),
        reg("temperature_limit", 13, 1, eeprom=True, unit="degC"),
        reg("max_voltage_limit", 14, 1, eeprom=True, unit="0.1 V"),
        reg("min_voltage_limit", 15, 1, eeprom=True, unit="0.1 V"),
        reg("max_torque_limit", 16, 2, eeprom=True, unit="0.1 %"),
        reg("unloading_condition", 19, 1, eeprom=True),
        reg("led_alarm_condition", 20, 1, eeprom=True),
        reg("position_p_gain", 21, 1, eeprom=True),
        reg("position_d_gain", 22, 1, eeprom=True),
        reg("position_i_gain", 23, 1, eeprom=True),
        reg("homing_offset", 31, 2, eeprom=True, sign_bit=11, unit="tick"),
        reg("operating_mode", 33, 1, eeprom=True),
        reg("torque_enable", 40, 1),
        reg("acceleration", 41, 1, unit="100 tick/s^2"),
        reg("goal_position", 42, 2, sign_bit=15, unit="tick"),
        reg("goal_time", 44, 2, unit="ms (PWM in mode 2: 0.1 %)"),
        reg("goal_speed", 46, 2, sign_bit=15, unit="tick/s"),
        reg("torque_limit", 48, 2, unit="0.1 %"),
        reg("lock", 55, 1),
        reg("present_position", 56, 2, "R", sign_bit=15, unit="tick"),
        reg("present_speed", 58, 2, "R", sign_bit=15, unit="tick/s"),
        reg("present_load", 60, 2, "R", sign_bit=10, unit="0.1 %"),
        reg("present_voltage", 62, 1, "R", unit="0.1 V"),
        reg("present_temperature", 63, 1, "R", unit="degC"),
        reg("hardware_error_status", 65, 1, "R"),
        reg("moving", 66, 1, "R"),
        reg("present_current", 69, 2, "R", sign_bit=15, unit="6.5 mA"),
    ),
)
