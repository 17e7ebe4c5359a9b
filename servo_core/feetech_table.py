"""The Feetech STS series memory table (STS3215/STS3250), address by address.

Sources: Feetech's "SMS/STS series memory table" (FT-SMS-STS e-manual, the document
LeRobot's `STS_SMS_SERIES_CONTROL_TABLE` cites; English renderings at
wiki.aifitlab.com "STS Servo - Memory Table Analysis" and wiki.juxitech.com "Magnetic
Encoder STS Servo - Memory Table Parsing") and Feetech's SCServo SDK register names
(`SMS_STS_*`). Values are little-endian; Feetech marks the sign of some fields with a
bit instead of two's complement (`sign_bit`): Homing Offset bit 11, Goal/Present
Position and speeds bit 15, Present Load and the PWM in Goal Time bit 10.

Areas: 0..4 version information (read-only), 5..39 EPROM (kept over a power cycle when
the Lock flag is 0 as they are written), 40..55 SRAM control, 56..70 SRAM feedback
(read-only), 80..86 factory parameters. Addresses no register covers (49..54, 73..79)
read as 0; writing them is refused.

A few entries are not in Feetech's published table and say so in their unit:
`goal_position_2` (71) is named by LeRobot only; 80..86 are marked "factory" by Feetech,
but LeRobot's SO-100/SO-101 `configure()` writes Maximum Acceleration (85) and real
servos acknowledge it, so the twin takes the write (and stores it; see firmware.py).

`STS_RANGES` are the value ranges the table documents; the firmware refuses a write
outside them (see sim_models/servo/firmware.py, FeetechFirmware).
"""

from __future__ import annotations

from collections.abc import Mapping

from servo_core.control_table import ControlTable, reg

__all__ = ["FEETECH_STS", "STS_RANGES"]

FEETECH_STS = ControlTable(
    "feetech",
    87,
    (
        # -- version information (read-only) -------------------------------------------
        reg("firmware_major", 0, 1, "R", eeprom=True),
        reg("firmware_minor", 1, 1, "R", eeprom=True),
        reg("endianness", 2, 1, "R", eeprom=True, unit="0: little-endian"),
        # Feetech: servo main (3) and sub (4) version; read as one word it is the model number.
        reg("model_number", 3, 2, "R", eeprom=True),
        # -- EPROM configuration ----------------------------------------------------------
        reg("id", 5, 1, eeprom=True),
        reg("baud_rate", 6, 1, eeprom=True, unit="0..7: 1M, 500k, 250k, 128k, 115200, 76800, 57600, 38400"),
        reg("return_delay_time", 7, 1, eeprom=True, unit="2 us"),
        reg("status_return_level", 8, 1, eeprom=True, unit="0: READ and PING only, 1: all"),
        reg("min_position_limit", 9, 2, eeprom=True, unit="tick"),
        reg("max_position_limit", 11, 2, eeprom=True, unit="tick"),
        reg("temperature_limit", 13, 1, eeprom=True, unit="degC"),
        reg("max_voltage_limit", 14, 1, eeprom=True, unit="0.1 V"),
        reg("min_voltage_limit", 15, 1, eeprom=True, unit="0.1 V"),
        reg("max_torque_limit", 16, 2, eeprom=True, unit="0.1 % (copied to torque_limit at power-on)"),
        reg("phase", 18, 1, eeprom=True, unit="bit flags (special function byte)"),
        reg("unloading_condition", 19, 1, eeprom=True, unit="status bits whose alarm cuts the output"),
        reg("led_alarm_condition", 20, 1, eeprom=True, unit="status bits that flash the LED"),
        reg("position_p_gain", 21, 1, eeprom=True),
        reg("position_d_gain", 22, 1, eeprom=True),
        reg("position_i_gain", 23, 1, eeprom=True),
        reg("minimum_startup_force", 24, 2, eeprom=True, unit="0.1 %"),
        reg("cw_dead_zone", 26, 1, eeprom=True, unit="tick"),
        reg("ccw_dead_zone", 27, 1, eeprom=True, unit="tick"),
        reg("protection_current", 28, 2, eeprom=True, unit="6.5 mA"),
        reg("angular_resolution", 30, 1, eeprom=True, unit="factor on the tick"),
        reg("homing_offset", 31, 2, eeprom=True, sign_bit=11, unit="tick (present = actual - offset)"),
        reg("operating_mode", 33, 1, eeprom=True, unit="0 position, 1 constant speed, 2 PWM, 3 step"),
        reg("protective_torque", 34, 1, eeprom=True, unit="% (output once overload protection trips)"),
        reg("protection_time", 35, 1, eeprom=True, unit="10 ms"),
        reg("overload_torque", 36, 1, eeprom=True, unit="% (output that starts the overload timer)"),
        reg("velocity_p_gain", 37, 1, eeprom=True),
        reg("overcurrent_protection_time", 38, 1, eeprom=True, unit="10 ms"),
        reg("velocity_i_gain", 39, 1, eeprom=True),
        # -- SRAM control -------------------------------------------------------------------
        reg("torque_enable", 40, 1, unit="0 off, 1 on (2 damping, 128 set centre: not modelled)"),
        reg("acceleration", 41, 1, unit="100 tick/s^2 (0: no limit)"),
        reg("goal_position", 42, 2, sign_bit=15, unit="tick"),
        reg("goal_time", 44, 2, unit="ms (PWM in mode 2: 0.1 %, sign bit 10)"),
        reg("goal_speed", 46, 2, sign_bit=15, unit="tick/s"),
        reg("torque_limit", 48, 2, unit="0.1 %"),
        reg("lock", 55, 1, unit="0: EPROM writes are saved, 1: they are not"),
        # -- SRAM feedback (read-only) --------------------------------------------------------
        reg("present_position", 56, 2, "R", sign_bit=15, unit="tick"),
        reg("present_speed", 58, 2, "R", sign_bit=15, unit="tick/s"),
        reg("present_load", 60, 2, "R", sign_bit=10, unit="0.1 % (PWM duty)"),
        reg("present_voltage", 62, 1, "R", unit="0.1 V"),
        reg("present_temperature", 63, 1, "R", unit="degC"),
        reg("async_write_flag", 64, 1, "R", unit="1: a REG_WRITE waits for ACTION"),
        # Feetech's "Status" (65): the same bits as a status packet's ERR byte.
        reg(
            "hardware_error_status", 65, 1, "R", unit="bits: 1 voltage, 2 sensor, 4 heat, 8 current, 32 load"
        ),
        reg("moving", 66, 1, "R"),
        reg("present_goal", 67, 2, "R", sign_bit=15, unit="tick (the position loop's target now)"),
        reg("present_current", 69, 2, "R", sign_bit=15, unit="6.5 mA"),
        reg("goal_position_2", 71, 2, "R", unit="tick (named by LeRobot only; reads 0)"),
        # -- factory parameters -----------------------------------------------------------------
        reg("moving_velocity_threshold", 80, 1, eeprom=True, unit="50 tick/s (factory)"),
        reg("dts", 81, 1, eeprom=True, unit="ms (factory)"),
        reg("velocity_unit_factor", 82, 1, eeprom=True, unit="factory"),
        reg("hts", 83, 1, eeprom=True, unit="20.83 ns (factory; firmware >= 2.54)"),
        reg("maximum_velocity_limit", 84, 1, eeprom=True, unit="0.732 rpm (factory)"),
        reg("maximum_acceleration", 85, 1, eeprom=True, unit="100 tick/s^2 (factory)"),
        reg(
            "acceleration_multiplier", 86, 1, eeprom=True, unit="factor used when acceleration is 0 (factory)"
        ),
    ),
)

STS_RANGES: Mapping[str, tuple[int, int]] = {
    "id": (0, 253),
    "baud_rate": (0, 7),
    "return_delay_time": (0, 254),
    "status_return_level": (0, 1),
    "min_position_limit": (0, 4095),
    "max_position_limit": (0, 4095),
    "temperature_limit": (0, 100),
    "max_voltage_limit": (0, 254),
    "min_voltage_limit": (0, 254),
    "max_torque_limit": (0, 1000),
    "phase": (0, 254),
    "unloading_condition": (0, 254),
    "led_alarm_condition": (0, 254),
    "position_p_gain": (0, 254),
    "position_d_gain": (0, 254),
    "position_i_gain": (0, 254),
    "minimum_startup_force": (0, 1000),
    "cw_dead_zone": (0, 16),
    "ccw_dead_zone": (0, 16),
    "protection_current": (0, 2047),
    "angular_resolution": (1, 128),
    "homing_offset": (-2047, 2047),
    "operating_mode": (0, 3),
    "protective_torque": (0, 254),
    "protection_time": (0, 254),
    "overload_torque": (0, 254),
    "velocity_p_gain": (0, 254),
    "overcurrent_protection_time": (0, 254),
    "velocity_i_gain": (0, 254),
    "acceleration": (0, 254),
    "torque_limit": (0, 1000),
    "lock": (0, 1),
}
"""Documented value ranges (decoded values: sign-magnitude fields signed)."""
