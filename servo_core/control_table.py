"""Control tables as data: the register maps of the servos the twin models.

Addresses and sizes follow the vendors' tables (ROBOTIS e-Manual for the
X series, Feetech's STS memory table). Values are little-endian. Feetech marks the sign
of some fields with a bit instead of two's complement (`sign_bit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from servo_core.units import decode_sign_magnitude

__all__ = ["DYNAMIXEL_X", "FEETECH_STS", "Access", "ControlTable", "Register"]

Access = Literal["R", "RW"]


@dataclass(frozen=True)
class Register:
    name: str
    address: int
    size: int
    access: Access
    eeprom: bool = False
    signed: bool = False  # two's complement
    sign_bit: int | None = None  # Feetech sign-magnitude fields
    unit: str = ""  # what one count means, e.g. "0.229 rpm", "0.1 V"; "" for plain numbers or flags

    def __post_init__(self) -> None:
        bits = 8 * self.size
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if self.signed else (0, (1 << bits) - 1)
        if self.sign_bit is not None:
            lo, hi = -((1 << self.sign_bit) - 1), (1 << self.sign_bit) - 1
        object.__setattr__(self, "lowest", lo)
        object.__setattr__(self, "highest", hi)

    def decode(self, raw: bytes) -> int:
        value = int.from_bytes(raw, "little")
        if self.sign_bit is not None:
            return decode_sign_magnitude(value, self.sign_bit)
        if self.signed and value >= 1 << (8 * self.size - 1):
            value -= 1 << (8 * self.size)
        return value

    def encode(self, value: int) -> bytes:
        """Little-endian bytes of `value`, saturated to the register's range."""
        lo, hi = self.lowest, self.highest  # type: ignore[attr-defined]
        value = lo if value < lo else (hi if value > hi else value)
        if self.sign_bit is not None:
            if value < 0:
                value = -value | (1 << self.sign_bit)
            return value.to_bytes(self.size, "little")
        return value.to_bytes(self.size, "little", signed=self.signed)


@dataclass(frozen=True)
class ControlTable:
    protocol: str
    size: int
    registers: tuple[Register, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {r.name: r for r in self.registers})

    def __getitem__(self, name: str) -> Register:
        return self._by_name[name]  # type: ignore[attr-defined]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name  # type: ignore[attr-defined]


def _r(name: str, address: int, size: int, access: Access = "RW", **kw: object) -> Register:
    return Register(name, address, size, access, **kw)  # type: ignore[arg-type]


DYNAMIXEL_X = ControlTable(
    "dynamixel",
    147,
    (
        _r("model_number", 0, 2, "R", eeprom=True),
        _r("model_information", 2, 4, "R", eeprom=True),
        _r("firmware_version", 6, 1, "R", eeprom=True),
        _r("id", 7, 1, eeprom=True),
        _r("baud_rate", 8, 1, eeprom=True),
        _r("return_delay_time", 9, 1, eeprom=True, unit="2 us"),
        _r("drive_mode", 10, 1, eeprom=True),
        _r("operating_mode", 11, 1, eeprom=True),
        _r("secondary_id", 12, 1, eeprom=True),
        _r("protocol_type", 13, 1, eeprom=True),
        _r("homing_offset", 20, 4, eeprom=True, signed=True, unit="tick"),
        _r("moving_threshold", 24, 4, eeprom=True),
        _r("temperature_limit", 31, 1, eeprom=True, unit="degC"),
        _r("max_voltage_limit", 32, 2, eeprom=True, unit="0.1 V"),
        _r("min_voltage_limit", 34, 2, eeprom=True, unit="0.1 V"),
        _r("pwm_limit", 36, 2, eeprom=True, unit="0.113 %"),
        _r("velocity_limit", 44, 4, eeprom=True, unit="0.229 rpm"),
        _r("max_position_limit", 48, 4, eeprom=True, unit="tick"),
        _r("min_position_limit", 52, 4, eeprom=True, unit="tick"),
        _r("shutdown", 63, 1, eeprom=True),
        _r("torque_enable", 64, 1),
        _r("led", 65, 1),
        _r("status_return_level", 68, 1),
        _r("registered_instruction", 69, 1, "R"),
        _r("hardware_error_status", 70, 1, "R"),
        _r("velocity_i_gain", 76, 2),
        _r("velocity_p_gain", 78, 2),
        _r("position_d_gain", 80, 2),
        _r("position_i_gain", 82, 2),
        _r("position_p_gain", 84, 2),
        _r("bus_watchdog", 98, 1, signed=True, unit="20 ms"),  # -1: it has fired
        _r("goal_pwm", 100, 2, signed=True, unit="0.113 %"),
        _r("goal_velocity", 104, 4, signed=True, unit="0.229 rpm"),
        _r("profile_acceleration", 108, 4, unit="214.577 rev/min^2"),
        _r("profile_velocity", 112, 4, unit="0.229 rpm"),
        _r("goal_position", 116, 4, signed=True, unit="tick"),
        _r("realtime_tick", 120, 2, "R", unit="ms"),
        _r("moving", 122, 1, "R"),
        _r("moving_status", 123, 1, "R"),
        _r("present_pwm", 124, 2, "R", signed=True, unit="0.113 %"),
        _r(
            "present_current",
            126,
            2,
            "R",
            signed=True,
            unit="model: 0.1 % load (XL430), 2.69 mA (XM430), 1 mA (XL330)",
        ),
        _r("present_velocity", 128, 4, "R", signed=True, unit="0.229 rpm"),
        _r("present_position", 132, 4, "R", signed=True, unit="tick"),
        _r("velocity_trajectory", 136, 4, "R", signed=True, unit="0.229 rpm"),
        _r("position_trajectory", 140, 4, "R", signed=True, unit="tick"),
        _r("present_input_voltage", 144, 2, "R", unit="0.1 V"),
        _r("present_temperature", 146, 1, "R", unit="degC"),
    ),
)

FEETECH_STS = ControlTable(
    "feetech",
    71,
    (
        _r("firmware_major", 0, 1, "R", eeprom=True),
        _r("firmware_minor", 1, 1, "R", eeprom=True),
        _r("model_number", 3, 2, "R", eeprom=True),
        _r("id", 5, 1, eeprom=True),
        _r("baud_rate", 6, 1, eeprom=True),
        _r("return_delay_time", 7, 1, eeprom=True, unit="2 us"),
        _r("status_return_level", 8, 1, eeprom=True),
        _r("min_position_limit", 9, 2, eeprom=True, unit="tick"),
        _r("max_position_limit", 11, 2, eeprom=True, unit="tick"),
        _r("temperature_limit", 13, 1, eeprom=True, unit="degC"),
        _r("max_voltage_limit", 14, 1, eeprom=True, unit="0.1 V"),
        _r("min_voltage_limit", 15, 1, eeprom=True, unit="0.1 V"),
        _r("max_torque_limit", 16, 2, eeprom=True, unit="0.1 %"),
        _r("unloading_condition", 19, 1, eeprom=True),
        _r("led_alarm_condition", 20, 1, eeprom=True),
        _r("position_p_gain", 21, 1, eeprom=True),
        _r("position_d_gain", 22, 1, eeprom=True),
        _r("position_i_gain", 23, 1, eeprom=True),
        _r("homing_offset", 31, 2, eeprom=True, sign_bit=11, unit="tick"),
        _r("operating_mode", 33, 1, eeprom=True),
        _r("torque_enable", 40, 1),
        _r("acceleration", 41, 1, unit="100 tick/s^2"),
        _r("goal_position", 42, 2, sign_bit=15, unit="tick"),
        _r("goal_time", 44, 2, unit="ms (PWM in mode 2: 0.1 %)"),
        _r("goal_speed", 46, 2, sign_bit=15, unit="tick/s"),
        _r("torque_limit", 48, 2, unit="0.1 %"),
        _r("lock", 55, 1),
        _r("present_position", 56, 2, "R", sign_bit=15, unit="tick"),
        _r("present_speed", 58, 2, "R", sign_bit=15, unit="tick/s"),
        _r("present_load", 60, 2, "R", sign_bit=10, unit="0.1 %"),
        _r("present_voltage", 62, 1, "R", unit="0.1 V"),
        _r("present_temperature", 63, 1, "R", unit="degC"),
        _r("hardware_error_status", 65, 1, "R"),
        _r("moving", 66, 1, "R"),
        _r("present_current", 69, 2, "R", sign_bit=15, unit="6.5 mA"),
    ),
)
