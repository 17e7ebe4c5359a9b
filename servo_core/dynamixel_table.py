"""The Dynamixel X series control table (ROBOTIS e-Manual), address by address."""

from __future__ import annotations

from servo_core.control_table import ControlTable, reg

__all__ = ["DYNAMIXEL_X"]

DYNAMIXEL_X = ControlTable(
    "dynamixel",
    147,
    (
        reg("model_number", 0, 2, "R", eeprom=True),
        reg("model_information", 2, 4, "R", eeprom=True),
        reg("firmware_version", 6, 1, "R", eeprom=True),
        reg("id", 7, 1, eeprom=True),
        reg("baud_rate", 8, 1, eeprom=True),
        reg("return_delay_time", 9, 1, eeprom=True, unit="2 us"),
        reg("drive_mode", 10, 1, eeprom=True),
        reg("operating_mode", 11, 1, eeprom=True),
        reg("secondary_id", 12, 1, eeprom=True),
        reg("protocol_type", 13, 1, eeprom=True),
        reg("homing_offset", 20, 4, eeprom=True, signed=True, unit="tick"),
        reg("moving_threshold", 24, 4, eeprom=True),
        reg("temperature_limit", 31, 1, eeprom=True, unit="degC"),
        reg("max_voltage_limit", 32, 2, eeprom=True, unit="0.1 V"),
        reg("min_voltage_limit", 34, 2, eeprom=True, unit="0.1 V"),
        reg("pwm_limit", 36, 2, eeprom=True, unit="0.113 %"),
        reg("velocity_limit", 44, 4, eeprom=True, unit="0.229 rpm"),
        reg("max_position_limit", 48, 4, eeprom=True, unit="tick"),
        reg("min_position_limit", 52, 4, eeprom=True, unit="tick"),
        reg("shutdown", 63, 1, eeprom=True),
        reg("torque_enable", 64, 1),
        reg("led", 65, 1),
        reg("status_return_level", 68, 1),
        reg("registered_instruction", 69, 1, "R"),
        reg("hardware_error_status", 70, 1, "R"),
        reg("velocity_i_gain", 76, 2),
        reg("velocity_p_gain", 78, 2),
        reg("position_d_gain", 80, 2),
        reg("position_i_gain", 82, 2),
        reg("position_p_gain", 84, 2),
        reg("bus_watchdog", 98, 1, signed=True, unit="20 ms"),  # -1: it has fired
        reg("goal_pwm", 100, 2, signed=True, unit="0.113 %"),
        reg("goal_velocity", 104, 4, signed=True, unit="0.229 rpm"),
        reg("profile_acceleration", 108, 4, unit="214.577 rev/min^2"),
        reg("profile_velocity", 112, 4, unit="0.229 rpm"),
        reg("goal_position", 116, 4, signed=True, unit="tick"),
        reg("realtime_tick", 120, 2, "R", unit="ms"),
        reg("moving", 122, 1, "R"),
        reg("moving_status", 123, 1, "R"),
        reg("present_pwm", 124, 2, "R", signed=True, unit="0.113 %"),
        reg(
            "present_current",
            126,
            2,
            "R",
            signed=True,
            unit="model: 0.1 % load (XL430), 2.69 mA (XM430), 1 mA (XL330)",
        ),
        reg("present_velocity", 128, 4, "R", signed=True, unit="0.229 rpm"),
        reg("present_position", 132, 4, "R", signed=True, unit="tick"),
        reg("velocity_trajectory", 136, 4, "R", signed=True, unit="0.229 rpm"),
        reg("position_trajectory", 140, 4, "R", signed=True, unit="tick"),
        reg("present_input_voltage", 144, 2, "R", unit="0.1 V"),
        reg("present_temperature", 146, 1, "R", unit="degC"),
    ),
)
