"""What each vendor's firmware does differently, one object per protocol.

The virtual servo (sim_models.servo.device) holds the state and runs the loop; the firmware object of its
protocol writes the factory defaults, reads the drive settings (velocity and
PWM units, profile registers) and encodes the present values a read returns.
It also says whether the firmware has a communication watchdog (`Watchdog`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple
from typing import Protocol as Structural

from servo_core.catalogue import ServoSpec
from servo_core.control_table import ControlTable
from servo_core.errors import ConfigError
from servo_core.protocol import DXL_STATE_BLOCK, DYNAMIXEL, FEETECH, STS_STATE_BLOCK, Protocol
from servo_core.units import encode_sign_magnitude

__all__ = [
    "DXL_PROFILE_ACC_UNIT",
    "DXL_VELOCITY_UNIT",
    "FIRMWARE",
    "Drive",
    "Firmware",
    "Servo",
    "Watchdog",
    "firmware_for",
]

DXL_VELOCITY_UNIT = 0.229 * 2.0 * math.pi / 60.0  # rad/s per unit
DXL_PROFILE_ACC_UNIT = 214.577 * 2.0 * math.pi / 3600.0  # rad/s² per unit

FAULT_INPUT_VOLTAGE = 1
FAULT_OVERHEAT = 4
FAULT_ELECTRICAL_SHOCK = 16
FAULT_OVERLOAD = 32
# The servo keeps its alarms in Dynamixel's bit layout; Feetech reports these of them.
_STS_REPORTED = FAULT_INPUT_VOLTAGE | FAULT_OVERHEAT | FAULT_OVERLOAD


class Servo(Structural):
    """What a firmware model reads and writes of the virtual servo it runs on."""

    spec: ServoSpec
    table: ControlTable
    regs: bytearray
    pwm: float
    velocity: float
    current_a: float
    supply_v: float
    faults: int
    time_s: float
    _full_pwm: float
    _ticks_per_rad: float
    _w0: float

    def _set(self, name: str, value: int) -> None: ...
    def _get(self, name: str) -> int: ...


class Drive(NamedTuple):
    """What the drive registers say, in the units the motor loop uses."""

    open_pwm: float  # PWM mode: a fraction of full scale
    goal_velocity: float  # velocity mode: rad/s
    kv_p: float  # velocity loop gains: PWM units per rad/s (and per rad/s·step)
    kv_i: float
    pwm_cap: float  # a fraction of full scale
    profile_velocity: float  # rad/s; 0: none
    profile_acceleration: float  # rad/s²; 0: none


class Watchdog(NamedTuple):
    """A firmware's communication watchdog (Dynamixel X: Bus Watchdog, address 98).

    The register holds 0 (off), 1..`max_units` (armed: that many `unit_s`) or -1 (fired).
    Armed with torque on, the servo stops when no instruction packet reaches it for longer
    than that; it then holds where it is, the register reads -1 and the goal registers
    refuse writes (data range error) until 0 is written. Source: ROBOTIS e-Manual, X series
    control table, Bus Watchdog (98).
    """

    register: str
    unit_s: float
    max_units: int
    pwm_goal: str  # the goals that become read-only when it fires, besides Goal Position
    velocity_goal: str


def _clamp(value: int, limit: int) -> int:
    return -limit if value < -limit else (limit if value > limit else value)


class Firmware:
    """The firmware model of one protocol's servos."""

    protocol: Protocol
    # Position PID gains: register units -> PWM units per tick (and per tick·step, tick/step).
    gain_scale: tuple[float, float, float]
    watchdog: Watchdog | None = None  # None: the firmware has no communication watchdog

    def factory_defaults(self, servo: Servo) -> None:
        raise NotImplementedError

    def load_drive(self, servo: Servo) -> Drive:
        """The drive settings (open-loop PWM, velocity loop, PWM cap, profile) the registers hold."""
        raise NotImplementedError

    def refresh_present(self, servo: Servo, ticks: int, moving: int, temperature: int) -> None:
        raise NotImplementedError


class DynamixelFirmware(Firmware):
    protocol = DYNAMIXEL
    # Dynamixel X position controller, after the e-Manual's block diagram:
    # KP = P/128, KI = I/65536, KD = D/16, output in PWM units (885 = 100 %).
    gain_scale = (1.0 / 128.0, 1.0 / 65536.0, 1.0 / 16.0)
    watchdog = Watchdog("bus_watchdog", 0.020, 127, "goal_pwm", "goal_velocity")

    def factory_defaults(self, servo: Servo) -> None:
        s, put = servo.spec, servo._set
        put("firmware_version", 52)
        put("baud_rate", 1)
        put("operating_mode", 3)
        put("pwm_limit", s.pwm_limit)
        put("max_position_limit", s.resolution_ticks - 1)
        put("min_position_limit", 0)
        put("status_return_level", 2)
        put("max_voltage_limit", int(round(s.max_voltage_v * 10)))  # 0.1 V units
        put("min_voltage_limit", int(round(s.min_voltage_v * 10)))
        put("velocity_limit", int(s.no_load_speed_rad_s / DXL_VELOCITY_UNIT))
        put("velocity_p_gain", 100)  # e-Manual defaults (X series)
        put("velocity_i_gain", 1920)

    def load_drive(self, servo: Servo) -> Drive:
        g, full = servo._get, servo._full_pwm
        return Drive(
            open_pwm=g("goal_pwm") / full,
            goal_velocity=g("goal_velocity") * DXL_VELOCITY_UNIT,
            kv_p=g("velocity_p_gain") / 128.0 * DXL_VELOCITY_UNIT**-1,
            kv_i=g("velocity_i_gain") / 65536.0 * DXL_VELOCITY_UNIT**-1,
            pwm_cap=min(g("pwm_limit"), self.protocol.full_pwm) / full,
            profile_velocity=g("profile_velocity") * DXL_VELOCITY_UNIT,
            profile_acceleration=g("profile_acceleration") * DXL_PROFILE_ACC_UNIT,
        )

    def refresh_present(self, servo: Servo, ticks: int, moving: int, temperature: int) -> None:
        regs = servo.regs
        DXL_STATE_BLOCK.pack_into(
            regs,
            self.protocol.state_address,
            moving,
            _clamp(int(round(servo.pwm * servo._full_pwm)), 32767),
            _clamp(self._current_units(servo), 32767),
            _clamp(int(round(servo.velocity / DXL_VELOCITY_UNIT)), 2**31 - 1),
            _clamp(ticks, 2**31 - 1),
            min(65535, int(round(servo.supply_v * 10))),
            temperature,
        )
        regs[120:122] = (int(servo.time_s * 1000) % 32768).to_bytes(2, "little")
        regs[70] = servo.faults

    @staticmethod
    def _current_units(servo: Servo) -> int:
        name = servo.spec.name
        if name.startswith("xl430"):
            return int(round(1000.0 * servo.pwm))  # Present Load, 0.1 % units
        unit_a = 0.00269 if name.startswith("xm") else 0.001
        return int(round(math.copysign(servo.current_a, servo.pwm) / unit_a))


class FeetechFirmware(Firmware):
    protocol = FEETECH
    # Feetech publishes no gain units. Scale fitted to public bench tests of the
    # STS3215 at P = 32: 1.8–2.6° error holding 1.47 N·m (half its stall torque),
    # i.e. about 20 PWM units (of 1000) per tick.
    gain_scale = (0.625, 1.0 / 256.0, 0.25)
    # The STS memory table has no communication watchdog: watchdog stays None.

    def factory_defaults(self, servo: Servo) -> None:
        s, put = servo.spec, servo._set
        put("firmware_major", 3)
        put("firmware_minor", 10)
        put("baud_rate", 0)
        put("status_return_level", 1)
        put("max_position_limit", s.resolution_ticks - 1)
        put("max_torque_limit", s.pwm_limit)
        put("torque_limit", s.pwm_limit)
        put("max_voltage_limit", int(round(s.max_voltage_v * 10)))  # 0.1 V units
        put("min_voltage_limit", int(round(s.min_voltage_v * 10)))

    def load_drive(self, servo: Servo) -> Drive:
        g, full, per_rad = servo._get, servo._full_pwm, servo._ticks_per_rad
        # In PWM mode Goal Time holds the PWM: 10 bits and a sign bit (bit 10).
        pwm_reg = servo.table["goal_time"]
        raw = int.from_bytes(servo.regs[pwm_reg.address : pwm_reg.address + 2], "little")
        return Drive(
            open_pwm=(-(raw & 0x3FF) if raw & 0x400 else (raw & 0x3FF)) / full,
            goal_velocity=g("goal_speed") / per_rad,
            # Feetech publishes no speed-loop gains: a PI loop that settles in ~0.1 s.
            kv_p=0.3 * full / servo._w0,
            kv_i=0.01 * full / servo._w0,
            pwm_cap=min(g("torque_limit"), self.protocol.full_pwm) / full,
            profile_velocity=abs(g("goal_speed")) / per_rad,
            profile_acceleration=g("acceleration") * 100.0 / per_rad,
        )

    def refresh_present(self, servo: Servo, ticks: int, moving: int, temperature: int) -> None:
        STS_STATE_BLOCK.pack_into(
            servo.regs,
            self.protocol.state_address,
            encode_sign_magnitude(ticks, 15),
            encode_sign_magnitude(int(round(servo.velocity * servo._ticks_per_rad)), 15),
            encode_sign_magnitude(int(round(1000.0 * servo.pwm)), 10),
            min(255, int(round(servo.supply_v * 10))),
            temperature,
            servo.faults & _STS_REPORTED,
            moving,
            encode_sign_magnitude(int(round(servo.current_a / 0.0065)), 15),
        )


FIRMWARE: Mapping[Protocol, Firmware] = {DYNAMIXEL: DynamixelFirmware(), FEETECH: FeetechFirmware()}


def firmware_for(protocol: Protocol) -> Firmware:
    try:
        return FIRMWARE[protocol]
    except KeyError:
        raise ConfigError(f"the twin has no firmware model for protocol {protocol.name!r}") from None
