"""The Dynamixel X series control tables (ROBOTIS e-Manual), address by address, model by model.

Every register of the e-Manual's table is here, EEPROM (0..63) and RAM (64..), with its
access, unit and the values the firmware takes. Models differ: the XL430-W250 has no
current sensor (no Current Limit 38, no Goal Current 102; 126 is Present Load, 0.1 %),
the XL330 has PWM Slope (62) and a smaller indirect area (20 entries, 168..227), the
X430 models with current control (XM430) have Current Limit and Goal Current in units of
2.69 mA. `x_model(model_number)` gives a model's table, its operating modes, its current
unit and the e-Manual's initial values; `DYNAMIXEL_X` is the protocol's table (the
XM430-W350's), which every X model shares up to address 147 except for those registers.

A register's `minimum`/`maximum` are the e-Manual's range (a write outside it is refused
with a Data Range Error); `limit` names the EEPROM register whose value bounds it on both
sides (a write beyond is refused with a Data Limit Error): Goal PWM by PWM Limit (36),
Goal Current by Current Limit (38), Goal Velocity by Velocity Limit (44). Goal Position
depends on the operating mode (position limits in mode 3, ±1,048,575 in modes 4 and 5),
which the firmware model checks.

Sources (ROBOTIS e-Manual, https://emanual.robotis.com/docs/en/dxl/x/): the control
tables of the XL430-W250, XL330-M288, XL330-M077 and XM430-W350 pages; the Protocol 2.0
page for the status errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from servo_core.control_table import Access, ControlTable, Register

__all__ = [
    "DYNAMIXEL_X",
    "GOAL_POSITION_EXTENDED",
    "HOMING_OFFSET_RANGE",
    "XModel",
    "XRegister",
    "X_MODELS",
    "x_model",
]

GOAL_POSITION_EXTENDED = 1_048_575  # modes 4 and 5: -256..256 rev (e-Manual, Goal Position 116)
HOMING_OFFSET_RANGE = 1_044_479  # -255..255 rev (e-Manual, Homing Offset 20)


@dataclass(frozen=True)
class XRegister(Register):
    """A register of an X series table with the values its firmware takes."""

    minimum: int | None = None  # outside minimum..maximum: Data Range Error
    maximum: int | None = None
    limit: str | None = None  # within ±(this register's value), else Data Limit Error


def _r(
    name: str,
    address: int,
    size: int,
    access: Access = "RW",
    *,
    eeprom: bool = False,
    signed: bool = False,
    unit: str = "",
    lo: int | None = None,
    hi: int | None = None,
    limit: str | None = None,
) -> XRegister:
    return XRegister(name, address, size, access, eeprom, signed, None, unit, lo, hi, limit)


def _eeprom(
    *,
    current: bool,
    pwm_slope: bool,
    baud_max: int,
    drive_max: int,
    protocol_max: int,
    volts: tuple[int, int],
    current_max: int,
    velocity_max: int,
    current_unit: str,
) -> tuple[XRegister, ...]:
    regs = [
        _r("model_number", 0, 2, "R", eeprom=True),
        _r("model_information", 2, 4, "R", eeprom=True),
        _r("firmware_version", 6, 1, "R", eeprom=True),
        _r("id", 7, 1, eeprom=True, lo=0, hi=252),
        _r("baud_rate", 8, 1, eeprom=True, lo=0, hi=baud_max),
        _r("return_delay_time", 9, 1, eeprom=True, unit="2 us", lo=0, hi=254),
        _r("drive_mode", 10, 1, eeprom=True, lo=0, hi=drive_max),
        _r("operating_mode", 11, 1, eeprom=True, lo=0, hi=16),  # the model's modes: see XModel.modes
        _r("secondary_id", 12, 1, eeprom=True, lo=0, hi=255),  # 253..255: no secondary id (default 255)
        _r("protocol_type", 13, 1, eeprom=True, lo=1, hi=protocol_max),
        _r(
            "homing_offset",
            20,
            4,
            eeprom=True,
            signed=True,
            unit="tick",
            lo=-HOMING_OFFSET_RANGE,
            hi=HOMING_OFFSET_RANGE,
        ),
        _r("moving_threshold", 24, 4, eeprom=True, unit="0.229 rpm", lo=0, hi=1023),
        _r("temperature_limit", 31, 1, eeprom=True, unit="degC", lo=0, hi=100),
        _r("max_voltage_limit", 32, 2, eeprom=True, unit="0.1 V", lo=volts[0], hi=volts[1]),
        _r("min_voltage_limit", 34, 2, eeprom=True, unit="0.1 V", lo=volts[0], hi=volts[1]),
        _r("pwm_limit", 36, 2, eeprom=True, unit="0.113 %", lo=0, hi=885),
    ]
    if current:
        regs.append(_r("current_limit", 38, 2, eeprom=True, unit=current_unit, lo=0, hi=current_max))
    regs += [
        _r("velocity_limit", 44, 4, eeprom=True, unit="0.229 rpm", lo=0, hi=velocity_max),
        _r("max_position_limit", 48, 4, eeprom=True, unit="tick", lo=0, hi=4095),
        _r("min_position_limit", 52, 4, eeprom=True, unit="tick", lo=0, hi=4095),
        _r("startup_configuration", 60, 1, eeprom=True, lo=0, hi=3),
    ]
    if pwm_slope:
        regs.append(_r("pwm_slope", 62, 1, eeprom=True, unit="1.977 mV/ms", lo=1, hi=255))
    regs.append(_r("shutdown", 63, 1, eeprom=True, lo=0, hi=0x3D))  # bits 0, 2, 3, 4, 5
    return tuple(regs)


def _ram(*, current: bool, current_unit: str) -> tuple[XRegister, ...]:
    regs = [
        _r("torque_enable", 64, 1, lo=0, hi=1),
        _r("led", 65, 1, lo=0, hi=1),
        _r("status_return_level", 68, 1, lo=0, hi=2),
        _r("registered_instruction", 69, 1, "R"),
        _r("hardware_error_status", 70, 1, "R"),
        _r("velocity_i_gain", 76, 2, lo=0, hi=16383),
        _r("velocity_p_gain", 78, 2, lo=0, hi=16383),
        _r("position_d_gain", 80, 2, lo=0, hi=16383),
        _r("position_i_gain", 82, 2, lo=0, hi=16383),
        _r("position_p_gain", 84, 2, lo=0, hi=16383),
        _r("feedforward_2nd_gain", 88, 2, lo=0, hi=16383),
        _r("feedforward_1st_gain", 90, 2, lo=0, hi=16383),
        # 0 off, 1..127 armed (20 ms units); -1 when it has fired (see firmware.Watchdog).
        _r("bus_watchdog", 98, 1, signed=True, unit="20 ms", lo=0, hi=127),
        _r("goal_pwm", 100, 2, signed=True, unit="0.113 %", limit="pwm_limit"),
    ]
    if current:
        regs.append(_r("goal_current", 102, 2, signed=True, unit=current_unit, limit="current_limit"))
    regs += [
        _r("goal_velocity", 104, 4, signed=True, unit="0.229 rpm", limit="velocity_limit"),
        _r("profile_acceleration", 108, 4, unit="214.577 rev/min^2", lo=0, hi=32767),
        _r("profile_velocity", 112, 4, unit="0.229 rpm", lo=0, hi=32767),
        _r("goal_position", 116, 4, signed=True, unit="tick"),  # range by operating mode
        _r("realtime_tick", 120, 2, "R", unit="ms"),
        _r("moving", 122, 1, "R"),
        _r("moving_status", 123, 1, "R"),
        _r("present_pwm", 124, 2, "R", signed=True, unit="0.113 %"),
        _r("present_current", 126, 2, "R", signed=True, unit=current_unit)
        if current
        else _r("present_load", 126, 2, "R", signed=True, unit="0.1 %"),
        _r("present_velocity", 128, 4, "R", signed=True, unit="0.229 rpm"),
        _r("present_position", 132, 4, "R", signed=True, unit="tick"),
        _r("velocity_trajectory", 136, 4, "R", signed=True, unit="0.229 rpm"),
        _r("position_trajectory", 140, 4, "R", signed=True, unit="tick"),
        _r("present_input_voltage", 144, 2, "R", unit="0.1 V"),
        _r("present_temperature", 146, 1, "R", unit="degC"),
        _r("backup_ready", 147, 1, "R"),
    ]
    return tuple(regs)


def _indirect(blocks: tuple[tuple[int, int, int], ...], last: int) -> tuple[XRegister, ...]:
    """Indirect Address n (2 bytes, 64..last) and Indirect Data n (1 byte), block by block:
    (first n, address of its Indirect Address, address of its Indirect Data, count)."""
    regs: list[XRegister] = []
    first = 1
    for address_at, data_at, count in blocks:
        for k in range(count):
            n = first + k
            regs.append(_r(f"indirect_address_{n}", address_at + 2 * k, 2, lo=64, hi=last))
        for k in range(count):
            regs.append(_r(f"indirect_data_{first + k}", data_at + k, 1))
        first += count
    return tuple(regs)


def _table(
    eeprom: tuple[XRegister, ...], ram: tuple[XRegister, ...], indirect: tuple[XRegister, ...]
) -> ControlTable:
    registers = eeprom + ram + indirect
    return ControlTable("dynamixel", max(r.address + r.size for r in registers), registers)


# X430 (XL430, XM430): 56 indirect entries, 168..251 and 578..661 (Protocol 2.0 only above 255).
_X430_INDIRECT = _indirect(((168, 224, 28), (578, 634, 28)), 661)
# XL330: 20 entries, 168..227.
_XL330_INDIRECT = _indirect(((168, 208, 20),), 227)

XL430_TABLE = _table(
    _eeprom(
        current=False,
        pwm_slope=False,
        baud_max=7,
        drive_max=13,
        protocol_max=2,
        volts=(60, 140),
        current_max=0,
        velocity_max=1023,
        current_unit="",
    ),
    _ram(current=False, current_unit=""),
    _X430_INDIRECT,
)
XM430_TABLE = _table(
    _eeprom(
        current=True,
        pwm_slope=False,
        baud_max=7,
        drive_max=13,
        protocol_max=2,
        volts=(95, 160),
        current_max=1193,
        velocity_max=1023,
        current_unit="2.69 mA",
    ),
    _ram(current=True, current_unit="2.69 mA"),
    _X430_INDIRECT,
)
XL330_TABLE = _table(
    _eeprom(
        current=True,
        pwm_slope=True,
        baud_max=6,
        drive_max=5,
        protocol_max=22,
        volts=(31, 70),
        current_max=1750,
        velocity_max=2047,
        current_unit="1 mA",
    ),
    _ram(current=True, current_unit="1 mA"),
    _XL330_INDIRECT,
)

DYNAMIXEL_X = XM430_TABLE
"""The protocol's table: addresses every X model shares (Goal Current and Current Limit
are the XM430's; see x_model for a model's own)."""

_POSITION_MODES = {1: "velocity", 3: "position", 4: "extended position", 16: "pwm"}
_CURRENT_MODES = {0: "current", **_POSITION_MODES, 5: "current-based position"}


@dataclass(frozen=True)
class XModel:
    """What the firmware of one X model does differently (e-Manual page of the model)."""

    family: str
    table: ControlTable
    modes: Mapping[int, str]  # Operating Mode (11) values the model has
    current_unit_a: float | None  # Goal/Present Current unit; None: no current sensing (Present Load)
    # e-Manual initial values the catalogue does not carry. Not among them: Min/Max Voltage
    # Limit, which the twin starts at the catalogue's operating range (a supply beyond the
    # rating raises the input voltage alarm) where the e-Manual's are wider (XL430: 6.0-14.0 V,
    # XM430: 9.5-16.0 V, XL330: 3.5-7.0 V).
    defaults: Mapping[str, int]
    drive_mode_bits: int  # the Drive Mode (10) bits the model has


def _defaults(**values: int) -> Mapping[str, int]:
    return MappingProxyType(dict(values))


_COMMON = {"moving_threshold": 10, "secondary_id": 255, "protocol_type": 2, "status_return_level": 2}

_XL430 = XModel(
    "XL430",
    XL430_TABLE,
    MappingProxyType(_POSITION_MODES),
    None,
    _defaults(
        **_COMMON,
        velocity_limit=265,
        shutdown=52,
        velocity_i_gain=1000,
        velocity_p_gain=100,
    ),
    0x0D,  # reverse, time-based profile, torque on by goal update
)
_XM430 = XModel(
    "XM430",
    XM430_TABLE,
    MappingProxyType(_CURRENT_MODES),
    0.00269,
    _defaults(
        **_COMMON,
        current_limit=1193,
        shutdown=52,
        velocity_i_gain=1920,
        velocity_p_gain=100,
    ),
    0x0D,
)


def _xl330(velocity_limit: int, velocity_i: int, velocity_p: int) -> XModel:
    return XModel(
        "XL330",
        XL330_TABLE,
        MappingProxyType(_CURRENT_MODES),
        0.001,
        _defaults(
            **_COMMON,
            velocity_limit=velocity_limit,
            current_limit=1750,
            pwm_slope=140,
            # The e-Manual's initial value is 53 (an input voltage error also cuts torque), but
            # the bench recordings in data/servo-logs (Rhoban/bam) show XL330-M288s at 7.3-8.2 V,
            # above the 7.0 V limit, with torque on and tracking: the twin starts at 52, as the
            # X430s. Writing 53 gives the e-Manual's behaviour.
            shutdown=52,
            velocity_i_gain=velocity_i,
            velocity_p_gain=velocity_p,
        ),
        0x05,  # reverse, time-based profile (range 0..5)
    )


X_MODELS: Mapping[int, XModel] = MappingProxyType(
    {
        1060: _XL430,  # XL430-W250
        1020: _XM430,  # XM430-W350
        1200: _xl330(445, 1600, 180),  # XL330-M288
        1190: _xl330(1620, 400, 40),  # XL330-M077
    }
)
"""The X models the twin knows, by model number (Model Number, address 0)."""

_GENERIC = XModel("X", DYNAMIXEL_X, MappingProxyType(_POSITION_MODES), None, _defaults(**_COMMON), 0x0D)


def x_model(model_number: int) -> XModel:
    """The firmware facts of an X model; a model the twin does not know gets the X series' table
    (DYNAMIXEL_X) and the position, velocity and PWM modes every X model has."""
    return X_MODELS.get(model_number, _GENERIC)
