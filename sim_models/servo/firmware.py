"""What each vendor's firmware does differently, one object per protocol.

The virtual servo (sim_models.servo.device) holds the state and runs the loop; the firmware object of its
protocol writes the factory defaults, reads the drive settings (velocity and
PWM units, profile registers) and encodes the present values a read returns.
It also says whether the firmware has a communication watchdog (`Watchdog`).

Hooks the virtual servo calls, whose defaults (on `Firmware`) are what every firmware did
before they existed: `eeprom_locked` (Dynamixel X: EEPROM is read-only while torque is on),
`refuse_write` (values and spans the firmware does not take), `written` (after a write
is applied; `goal_written` for a write of Goal Position alone, the bus's hot path),
`goal_angle` / `goal_ticks` (goal register <-> shaft angle, where a homing offset applies)
and `monitor` (protections, every few physics steps). A firmware keeps per-servo state of
its own in `servo._fw_state` (set in `factory_defaults`). Per model: `table_for` (the
model's control table), `operating_modes` (the modes it has), `shutdown_mask` (the alarms
that cut torque) and `rebooted` (after a reboot instruction).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple
from typing import Protocol as Structural

from servo_core.catalogue import ServoSpec
from servo_core.control_table import ControlTable, Register
from servo_core.dynamixel_table import GOAL_POSITION_EXTENDED, XModel, XRegister, x_model
from servo_core.errors import ConfigError
from servo_core.feetech_table import STS_RANGES
from servo_core.protocol import DXL_STATE_BLOCK, DYNAMIXEL, FEETECH, STS_STATE_BLOCK, Protocol

__all__ = [
    "DXL_PROFILE_ACC_UNIT",
    "DXL_VELOCITY_UNIT",
    "FIRMWARE",
    "Drive",
    "FeetechFirmware",
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
    position: float  # output-shaft rad, 0 at the centre tick
    _centre: int
    _full_pwm: float
    _ticks_per_rad: float
    _w0: float
    _torque_on: bool
    _pwm_cap: float
    _setpoint: float
    # The firmware's own per-servo state (None when it keeps none). Any: the hot paths take it
    # as their own type without a call; the cold ones check it (_dxl_state, _sts_state).
    _fw_state: Any
    _mode: str  # the operating mode's name (see Firmware.operating_modes)
    _goal: float  # rad: the goal the position loop is taking the shaft to
    _sp_velocity: float  # rad/s: the profile's velocity at the setpoint
    _profiled: bool  # whether a profile (velocity or acceleration) shapes goals
    _tau_m: float  # N·m: the motor's torque at the last physics step (its sign: the current's)

    def _set(self, name: str, value: int) -> None: ...
    def _get(self, name: str) -> int: ...
    def _load_settings(self) -> None: ...
    def write(self, address: int, data: bytes) -> None: ...


class Drive(NamedTuple):
    """What the drive registers say, in the units the motor loop uses."""

    open_pwm: float  # PWM mode: a fraction of full scale
    goal_velocity: float  # velocity mode: rad/s
    kv_p: float  # velocity loop gains: PWM units per rad/s (and per rad/s·step)
    kv_i: float
    pwm_cap: float  # a fraction of full scale
    profile_velocity: float  # rad/s; 0: none
    profile_acceleration: float  # rad/s²; 0: none
    current_goal_a: float = 0.0  # current mode: the current the loop holds (A)
    current_cap_a: float = math.inf  # current and current-based position modes: |current| at most (A)


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

    # -- hooks: the defaults are the behaviour every firmware had before they existed --------
    def eeprom_locked(self, servo: Servo) -> bool:
        """Whether EEPROM registers refuse writes now (Dynamixel X: while torque is on)."""
        return servo._torque_on

    def refuse_write(self, servo: Servo, address: int, data: bytes) -> tuple[str, str] | None:
        """(message, RegisterError kind) for a write the firmware does not take; None: take it."""
        return None

    def written(self, servo: Servo, address: int, data: bytes) -> None:
        """A write has been applied to the control table (before the settings are reloaded)."""

    def goal_written(self, servo: Servo, address: int, data: bytes) -> None:
        """A write of Goal Position alone has been applied (the bus's hot path; no settings reload).
        Default: `written`."""
        self.written(servo, address, data)

    def goal_angle(self, servo: Servo, ticks: int) -> float:
        """The shaft angle (rad) the goal register value `ticks` asks for."""
        return (ticks - servo._centre) / servo._ticks_per_rad

    def goal_ticks(self, servo: Servo, actual_ticks: int) -> int:
        """The goal register value that holds the shaft where it is (`actual_ticks`, centre-based)."""
        return actual_ticks

    def monitor(self, servo: Servo, dt: float) -> None:
        """Protections: called every few physics steps with the time they covered (s)."""

    def table_for(self, spec: ServoSpec) -> ControlTable:
        """The control table of the model `spec` describes (default: the protocol's)."""
        return self.protocol.table

    def operating_modes(self, spec: ServoSpec) -> Mapping[int, str]:
        """The operating modes the model has that the twin models, by register value."""
        return self.protocol.operating_modes

    def shutdown_mask(self, servo: Servo) -> int:
        """The alarm bits that cut torque (the X series' default Shutdown: overheat, shock, overload)."""
        return FAULT_OVERHEAT | FAULT_ELECTRICAL_SHOCK | FAULT_OVERLOAD

    def rebooted(self, servo: Servo) -> None:
        """The servo has been rebooted (alarms cleared, torque off), before its settings reload."""


# What a read refreshes, in one pack from 120: Realtime Tick, then protocol.DXL_STATE_BLOCK
# (122 Moving .. 146 Present Temperature) with its pad bytes taken by Moving Status (123) and
# the trajectories (136 Velocity Trajectory, 140 Position Trajectory).
_DXL_PRESENT = struct.Struct("<HBBhhiiiiHB")
assert _DXL_PRESENT.size == 2 + DXL_STATE_BLOCK.size and DYNAMIXEL.state_address == 122
_I32 = 2**31 - 1
_DXL_POSITION_LOOPS = frozenset({"position", "extended position", "current-based position"})
# The X series has no In-Position Threshold register: Moving Status' In-Position bit is set
# when the profile has ended and the present position is this close to the goal (the twin's
# choice; about the dead band friction leaves an XL330 at its default P gain).
IN_POSITION_TICKS = 20
# Drive Mode bits the twin does not model: time-based profile (2), torque on by goal update (3).
_DXL_DRIVE_UNMODELLED = 0x0C
_DXL_SHUTDOWN_BITS = 0x3D  # input voltage, overheat, encoder, electrical shock, overload
_DXL_INDIRECT_START = 168  # Indirect Address 1, on every X model


@dataclass
class _DxlState:
    """What a Dynamixel X firmware keeps per servo besides its control table."""

    model: XModel
    owners: tuple[XRegister | None, ...]  # the register each address belongs to
    mode: int = 3  # the Operating Mode in effect
    direction: int = 1  # Drive Mode bit 0: -1 reverses Goal and Present Position
    home: int = 0  # the Homing Offset in effect (ticks)
    turns: int = 0  # whole turns (ticks) added to the count since it was last reset
    wrap: bool = True  # reset the count within one turn at the next look at the shaft
    profile: int = 0  # Moving Status bits 4-5: the profile of the last goal
    # Indirect Data that stands for another address: (its own address, the target's).
    indirect: tuple[tuple[int, int], ...] = ()
    indirect_data: frozenset[int] = frozenset()  # the addresses of Indirect Data 1..n
    voltage: int = 0  # Present Input Voltage: the supply never changes after the servo is built


_OWNERS: dict[int, tuple[XRegister | None, ...]] = {}


def _owners(table: ControlTable) -> tuple[XRegister | None, ...]:
    """The register at each address of `table` (None where none is), computed once per table."""
    found = _OWNERS.get(id(table))
    if found is None:
        owner: list[XRegister | None] = [None] * table.size
        for reg in table.registers:
            assert isinstance(reg, XRegister)
            for a in range(reg.address, reg.address + reg.size):
                owner[a] = reg
        found = _OWNERS[id(table)] = tuple(owner)
    return found


def _dxl_state(servo: Servo) -> _DxlState:
    state = servo._fw_state
    assert isinstance(state, _DxlState), "a Dynamixel servo without its firmware state"
    return state


def _covers(reg: Register, address: int, end: int) -> bool:
    return address < reg.address + reg.size and reg.address < end


class DynamixelFirmware(Firmware):
    """Dynamixel X series firmware (XL430, XL330, XM430), after the ROBOTIS e-Manual.

    * Tables and modes per model (servo_core.dynamixel_table.x_model): the XL430 has modes
      1, 3, 4, 16 and Present Load; the XL330 and XM430 also current control (0) and
      current-based position control (5), with Current Limit (38) and Goal Current (102).
    * Writes (`refuse_write`), with the Protocol 2.0 error codes: an address no register
      covers, a read-only register, an EEPROM register while Torque Enable is 1: Access
      Error (7); a write that covers part of a multi-byte register: Data Length Error (5); a
      value outside the register's range, or a mode, drive mode or protocol the model lacks
      (or the twin does not model): Data Range Error (4); Goal PWM, Current or Velocity beyond
      ±PWM, Current or Velocity Limit, or Goal Position outside Min/Max Position Limit in
      position mode: Data Limit Error (6).
    * Homing Offset (20) and Drive Mode (10) bit 0: Present Position = Actual Position +
      Homing Offset, the actual position counted the other way round in reverse mode; a goal
      G is reached where the present position reads G (the offset keeps its sign in reverse
      mode). In position mode (3) an offset outside ±1,024 is ignored. Reverse mode inverts
      Goal and Present Position (and the trajectories) only, as the e-Manual says of the
      XL330/XL430/XM430 (velocity, current and PWM keep the motor's sign).
    * Present Position counts turns continuously; it is reset to within one turn (0..4095,
      before the homing offset) at power-on and reboot, when the mode becomes position
      control, when torque is turned on in position control, and by the CLEAR instruction
      (`clear_turns`).
    * Limits that clamp what the loop does: PWM Limit and, outside PWM mode, |Goal PWM| cap
      the PWM; Velocity Limit caps Goal Velocity and Profile Velocity; in current mode the
      loop holds Goal Current within Current Limit; in current-based position mode the
      position loop's current (so its torque) is capped at |Goal Current|.
    * Switching the operating mode resets Profile Velocity/Acceleration to 0 and Goal PWM and
      Goal Current to PWM and Current Limit (the e-Manual's note), except that the goal of
      the mode itself (Goal PWM in PWM mode, Goal Current in current mode) starts at 0, so
      that turning torque on does not drive the motor flat out.
    * Moving (122): faster than Moving Threshold (24), or a profile under way; Moving Status
      (123): in-position, profile ongoing and the profile type, in the position modes.
    * Shutdown (63): the alarm bits that cut torque (default 52; the e-Manual's XL330 default,
      53, is not kept: see servo_core.dynamixel_table).
    * Indirect Address/Data: Indirect Data n reads and writes the byte at Indirect Address n.
    """

    protocol = DYNAMIXEL
    # Dynamixel X position controller, after the e-Manual's block diagram:
    # KP = P/128, KI = I/65536, KD = D/16, output in PWM units (885 = 100 %).
    gain_scale = (1.0 / 128.0, 1.0 / 65536.0, 1.0 / 16.0)
    watchdog: Watchdog | None = Watchdog("bus_watchdog", 0.020, 127, "goal_pwm", "goal_velocity")

    # -- model ------------------------------------------------------------------------------
    def table_for(self, spec: ServoSpec) -> ControlTable:
        return x_model(spec.model_number).table

    def operating_modes(self, spec: ServoSpec) -> Mapping[int, str]:
        return x_model(spec.model_number).modes

    def shutdown_mask(self, servo: Servo) -> int:
        return servo._get("shutdown")

    def factory_defaults(self, servo: Servo) -> None:
        s, put, table = servo.spec, servo._set, servo.table
        model = x_model(s.model_number)
        put("firmware_version", 52)
        put("baud_rate", 1)
        put("operating_mode", 3)
        put("pwm_limit", s.pwm_limit)
        put("max_position_limit", s.resolution_ticks - 1)
        put("min_position_limit", 0)
        put("max_voltage_limit", int(round(s.max_voltage_v * 10)))  # 0.1 V units
        put("min_voltage_limit", int(round(s.min_voltage_v * 10)))
        put("velocity_limit", int(s.no_load_speed_rad_s / DXL_VELOCITY_UNIT))
        put("velocity_p_gain", 100)  # e-Manual defaults (X series)
        put("velocity_i_gain", 1920)
        put("shutdown", 52)
        for name, value in model.defaults.items():  # the model's own initial values
            put(name, value)
        indirect_data = []
        for reg in table.registers:  # Indirect Address n starts at Indirect Data n itself
            if reg.name.startswith("indirect_address_"):
                data_reg = table["indirect_data_" + reg.name.removeprefix("indirect_address_")]
                put(reg.name, data_reg.address)
                indirect_data.append(data_reg.address)
        put("goal_pwm", servo._get("pwm_limit"))
        if "goal_current" in table:
            put("goal_current", servo._get("current_limit"))
        state = _DxlState(model, _owners(table), indirect_data=frozenset(indirect_data))
        state.voltage = min(65535, int(round(servo.supply_v * 10)))
        servo._fw_state = state
        self._frame(servo, state)

    def rebooted(self, servo: Servo) -> None:
        _dxl_state(servo).wrap = True

    # -- present position and goals ------------------------------------------------------------
    def _frame(self, servo: Servo, state: _DxlState) -> None:
        g = servo._get
        state.direction = -1 if g("drive_mode") & 1 else 1
        home = g("homing_offset")
        state.home = 0 if state.mode == 3 and abs(home) > 1024 else home

    @staticmethod
    def _turns_now(servo: Servo, state: _DxlState, raw: int) -> int:
        """The turns that put the actual position within 0..resolution-1."""
        turn = servo.spec.resolution_ticks
        return -((state.direction * raw) // turn) * turn

    def _present(self, servo: Servo, state: _DxlState, raw: int) -> int:
        """Present Position for the encoder count `raw` (centre-based, continuous)."""
        if state.wrap:
            state.turns, state.wrap = self._turns_now(servo, state, raw), False
        return state.direction * raw + state.turns + state.home

    def _raw(self, servo: Servo, angle: float) -> int:
        return int(math.floor(angle * servo._ticks_per_rad + 0.5)) + servo._centre

    def goal_angle(self, servo: Servo, ticks: int) -> float:
        state: _DxlState = servo._fw_state  # on every goal write: no checked lookup
        # A reset still pending (at power-on) counts from where the shaft is now, and stays
        # pending: the plant may yet move the shaft before anyone looks at it.
        turns = self._turns_now(servo, state, self._raw(servo, servo.position)) if state.wrap else state.turns
        raw = state.direction * (ticks - state.home - turns)
        return (raw - servo._centre) / servo._ticks_per_rad

    def goal_ticks(self, servo: Servo, actual_ticks: int) -> int:
        state: _DxlState = servo._fw_state
        return self._present(servo, state, actual_ticks)

    def clear_turns(self, servo: Servo) -> bool:
        """The CLEAR instruction (0x01): reset Present Position to within one turn. False (Result
        Fail) while the servo moves."""
        if abs(servo.velocity) > servo._get("moving_threshold") * DXL_VELOCITY_UNIT:
            return False
        state = _dxl_state(servo)
        goal = self.goal_angle(servo, servo._get("goal_position"))
        state.wrap = True
        self._present(servo, state, self._raw(servo, servo.position))
        raw_goal = self._raw(servo, goal)  # the goal keeps the shaft where it was going
        servo._set("goal_position", state.direction * raw_goal + state.turns + state.home)
        return True

    # -- writes ---------------------------------------------------------------------------------
    def refuse_write(self, servo: Servo, address: int, data: bytes) -> tuple[str, str] | None:
        state = _dxl_state(servo)
        owners, end = state.owners, address + len(data)
        if address < 0 or end > len(owners):
            return f"write of {len(data)} bytes at {address} is outside the table", "access"
        regs: list[XRegister] = []
        for at in range(address, end):
            reg = owners[at]
            if reg is None:
                return f"no register at address {at} (a write of {len(data)} bytes at {address})", "access"
            if not regs or regs[-1] is not reg:
                regs.append(reg)
        for reg in regs:
            if reg.access == "R":
                return f"register {reg.name} ({reg.address}) is read-only", "access"
        if self.eeprom_locked(servo):
            for reg in regs:
                if reg.eeprom:
                    return f"EEPROM register {reg.name} is locked while torque is on", "access"
        for reg in (regs[0], regs[-1]):
            if reg.address < address or reg.address + reg.size > end:
                return (
                    f"a write of {len(data)} bytes at {address} covers only part of {reg.name} "
                    f"({reg.address}..{reg.address + reg.size - 1})",
                    "length",
                )
        for reg in regs:
            at = reg.address - address
            refusal = self._refuse_value(servo, state, reg, reg.decode(data[at : at + reg.size]))
            if refusal is not None:
                return refusal
        return self._refuse_indirect(servo, state, address, data)

    def _refuse_value(
        self, servo: Servo, state: _DxlState, reg: XRegister, value: int
    ) -> tuple[str, str] | None:
        if reg.minimum is not None and reg.maximum is not None and not reg.minimum <= value <= reg.maximum:
            return f"{reg.name} takes {reg.minimum}..{reg.maximum}, got {value}", "range"
        if reg.limit is not None:
            limit = servo._get(reg.limit)
            if abs(value) > limit:
                return f"{reg.name} {value} exceeds {reg.limit} (±{limit})", "limit"
        name = reg.name
        if name == "goal_position":
            if state.mode == 3:
                lo, hi = servo._get("min_position_limit"), servo._get("max_position_limit")
                if hi > lo and not lo <= value <= hi:
                    return f"goal position {value} is outside the position limits [{lo}, {hi}]", "limit"
            elif state.mode in (4, 5) and abs(value) > GOAL_POSITION_EXTENDED:
                return f"goal position {value} is outside ±{GOAL_POSITION_EXTENDED} (256 turns)", "range"
        elif name == "operating_mode" and value not in state.model.modes:
            has = ", ".join(f"{k} ({v})" for k, v in state.model.modes.items())
            lacks = " (no current sensing)" if state.model.current_unit_a is None else ""
            return (
                f"operating mode {value} is not modelled for {servo.spec.name}{lacks}; it has: {has}",
                "range",
            )
        elif name == "drive_mode":
            missing = value & ~state.model.drive_mode_bits
            if missing:
                return f"drive mode {value}: {servo.spec.name} has no bits {missing:#x}", "range"
            if value & _DXL_DRIVE_UNMODELLED:
                return (
                    f"drive mode {value}: the time-based profile (bit 2) and torque on by goal update "
                    "(bit 3) are not modelled by the twin",
                    "range",
                )
        elif name == "protocol_type" and value != 2:
            return f"protocol type {value} is not modelled: the twin's servos speak Protocol 2.0", "range"
        elif name == "shutdown" and value & ~_DXL_SHUTDOWN_BITS:
            return f"shutdown {value:#x} sets bits no alarm has", "range"
        return None

    def _refuse_indirect(
        self, servo: Servo, state: _DxlState, address: int, data: bytes
    ) -> tuple[str, str] | None:
        """A write to Indirect Data is a write to the addresses it stands for: refused as those are."""
        for target, chunk in self._indirect_runs(servo, state, address, data):
            refusal = self.refuse_write(servo, target, chunk)
            if refusal is not None:
                return f"through indirect data: {refusal[0]}", refusal[1]
        return None

    def _indirect_runs(
        self, servo: Servo, state: _DxlState, address: int, data: bytes
    ) -> list[tuple[int, bytes]]:
        """The bytes of a write that land in Indirect Data standing for other registers, as runs
        of consecutive target addresses (in the order written)."""
        if not state.indirect:
            return []
        mapped = dict(state.indirect)
        runs: list[tuple[int, bytearray]] = []
        for k, byte in enumerate(data):
            target = mapped.get(address + k)
            if target is None or target in state.indirect_data:
                continue  # an entry that points at Indirect Data holds the byte itself: no chain
            if runs and runs[-1][0] + len(runs[-1][1]) == target:
                runs[-1][1].append(byte)
            else:
                runs.append((target, bytearray([byte])))
        return [(t, bytes(b)) for t, b in runs]

    def written(self, servo: Servo, address: int, data: bytes) -> None:
        state: _DxlState = servo._fw_state  # on every goal write: no checked lookup
        end = address + len(data)
        if state.wrap:  # a reset still pending happened before this instruction arrived
            self._present(servo, state, self._raw(servo, servo.position))
        if address <= 116 and end >= 120:  # Goal Position: the hot path, a goal and nothing else
            state.profile = self._profile_type(servo, state)
            if address == 116 and end == 120:
                return
        regs, frame = servo.regs, False
        if address <= 11 < end and regs[11] != state.mode:  # Operating Mode
            self._mode_changed(servo, state, regs[11])
            frame = True
        if address <= 64 < end and regs[64] and not servo._torque_on and state.mode == 3:
            state.wrap = True  # torque on in position mode: counted within one turn again
        if frame or address <= 10 < end or (address < 24 and end > 20):  # Drive Mode, Homing Offset
            self._frame(servo, state)
        if end > _DXL_INDIRECT_START:
            self._indirect_written(servo, state, address, data)

    def _mode_changed(self, servo: Servo, state: _DxlState, mode: int) -> None:
        put, g = servo._set, servo._get
        state.mode = mode
        put("profile_velocity", 0)
        put("profile_acceleration", 0)
        put("goal_pwm", 0 if mode == 16 else g("pwm_limit"))
        if "goal_current" in servo.table:
            put("goal_current", 0 if mode == 0 else g("current_limit"))
        if mode == 3:
            state.wrap = True

    def _profile_type(self, servo: Servo, state: _DxlState) -> int:
        """Moving Status bits 4-5 for a new goal: trapezoidal 0x30, triangular 0x20 (the
        velocity is never reached), rectangular 0x10 (no acceleration), none 0x00."""
        g = servo._get
        velocity = g("profile_velocity") * DXL_VELOCITY_UNIT
        if velocity <= 0:
            return 0x00
        acceleration = g("profile_acceleration") * DXL_PROFILE_ACC_UNIT
        if acceleration <= 0:
            return 0x10
        distance = abs(self.goal_angle(servo, g("goal_position")) - servo.position)
        return 0x20 if velocity * velocity / acceleration > distance else 0x30

    def _indirect_written(self, servo: Servo, state: _DxlState, address: int, data: bytes) -> None:
        """Indirect Address written: remember what Indirect Data stands for. Indirect Data
        written: the bytes go where it points."""
        table, end = servo.table, address + len(data)
        if any(_covers(r, address, end) for r in table.registers if r.name.startswith("indirect_address_")):
            pairs = []
            for reg in table.registers:
                if reg.name.startswith("indirect_address_"):
                    own = table["indirect_data_" + reg.name.removeprefix("indirect_address_")].address
                    target = servo._get(reg.name)
                    if target != own:
                        pairs.append((own, target))
            state.indirect = tuple(pairs)
        for target, chunk in self._indirect_runs(servo, state, address, data):
            if target in state.indirect_data:
                servo.regs[target : target + len(chunk)] = chunk  # Indirect Data holding a byte
            else:
                servo.write(target, chunk)

    # -- drive ----------------------------------------------------------------------------------
    def load_drive(self, servo: Servo) -> Drive:
        g, full = servo._get, servo._full_pwm
        state = _dxl_state(servo)
        mode = servo._mode
        pwm_limit = min(g("pwm_limit"), self.protocol.full_pwm)
        goal_pwm = _clamp(g("goal_pwm"), pwm_limit)
        velocity_limit = g("velocity_limit")
        profile_velocity = g("profile_velocity")
        if velocity_limit > 0:
            profile_velocity = min(profile_velocity, velocity_limit)
        current_goal, current_cap = 0.0, math.inf
        unit = state.model.current_unit_a
        if unit is not None and "current_limit" in servo.table:
            current_limit = g("current_limit")
            goal_current = _clamp(g("goal_current"), current_limit)
            if mode == "current":
                current_goal, current_cap = goal_current * unit, current_limit * unit
            elif mode == "current-based position":
                current_cap = abs(goal_current) * unit
        return Drive(
            open_pwm=goal_pwm / full,
            goal_velocity=_clamp(g("goal_velocity"), velocity_limit) * DXL_VELOCITY_UNIT,
            kv_p=g("velocity_p_gain") / 128.0 * DXL_VELOCITY_UNIT**-1,
            kv_i=g("velocity_i_gain") / 65536.0 * DXL_VELOCITY_UNIT**-1,
            # Goal PWM limits the PWM in every mode but PWM control, where it is the command.
            pwm_cap=(pwm_limit if mode == "pwm" else min(pwm_limit, abs(goal_pwm))) / full,
            profile_velocity=profile_velocity * DXL_VELOCITY_UNIT,
            profile_acceleration=g("profile_acceleration") * DXL_PROFILE_ACC_UNIT,
            current_goal_a=current_goal,
            current_cap_a=current_cap,
        )

    # -- present values -------------------------------------------------------------------------
    def refresh_present(self, servo: Servo, ticks: int, moving: int, temperature: int) -> None:
        # On every read of every servo: _present, _raw and _clamp are inlined, and the block is
        # packed once with Realtime Tick, Moving Status and the trajectories (_DXL_PRESENT).
        regs = servo.regs
        state: _DxlState = servo._fw_state
        if state.wrap:
            state.turns, state.wrap = self._turns_now(servo, state, ticks), False
        direction, turns, home = state.direction, state.turns, state.home
        present = direction * ticks + turns + home  # _present(servo, state, ticks)
        loop = servo._torque_on and servo._mode in _DXL_POSITION_LOOPS
        ongoing = loop and servo._profiled and servo._setpoint != servo._goal
        velocity = servo.velocity
        threshold = int.from_bytes(regs[24:28], "little") * DXL_VELOCITY_UNIT  # Moving Threshold
        status, velocity_trajectory, position_trajectory = 0, 0, 0
        if loop:
            goal = int.from_bytes(regs[116:120], "little", signed=True)
            status = state.profile | (0x02 if ongoing else 0)
            if not ongoing and abs(goal - present) <= IN_POSITION_TICKS:
                status |= 0x01
            velocity_trajectory = int(round(direction * servo._sp_velocity / DXL_VELOCITY_UNIT))
            raw = int(math.floor(servo._setpoint * servo._ticks_per_rad + 0.5)) + servo._centre
            position_trajectory = direction * raw + turns + home
        pwm = int(round(servo.pwm * servo._full_pwm))
        current = self._current_units(servo, state)
        speed = int(round(velocity / DXL_VELOCITY_UNIT))
        _DXL_PRESENT.pack_into(
            regs,
            120,
            int(servo.time_s * 1000) % 32768,
            1 if ongoing or abs(velocity) > threshold else 0,
            status,
            -32767 if pwm < -32767 else (32767 if pwm > 32767 else pwm),
            -32767 if current < -32767 else (32767 if current > 32767 else current),
            -_I32 if speed < -_I32 else (_I32 if speed > _I32 else speed),
            -_I32 if present < -_I32 else (_I32 if present > _I32 else present),
            _clamp(velocity_trajectory, _I32),
            _clamp(position_trajectory, _I32),
            state.voltage,
            temperature,
        )
        regs[70] = servo.faults
        for own, target in state.indirect:  # Indirect Data reads the byte it stands for
            regs[own] = regs[target]

    @staticmethod
    def _current_units(servo: Servo, state: _DxlState) -> int:
        unit_a = state.model.current_unit_a
        if unit_a is None:
            return int(round(1000.0 * servo.pwm))  # Present Load, 0.1 % units
        # The XL330 measures its supply current, the XM430 the motor's: the twin gives the motor's.
        return int(round(math.copysign(servo.current_a, servo._tau_m) / unit_a))


# Feetech STS status bits: register 65 ("Status") and every status packet's ERR byte.
STS_VOLTAGE, STS_SENSOR, STS_OVERHEAT, STS_OVERCURRENT, STS_OVERLOAD = 1, 2, 4, 8, 32

_STS = FEETECH.table
# The register each address belongs to (None: no register there), for the write checks.
_STS_OWNER: tuple[Register | None, ...] = tuple(
    next((r for r in _STS.registers if r.address <= a < r.address + r.size), None) for a in range(_STS.size)
)
# The EPROM registers a write may change: what the Lock flag decides to save or not.
_STS_EPROM = tuple((r.address, r.address + r.size) for r in _STS.registers if r.eeprom and r.access == "RW")
_STS_LOCK = _STS["lock"].address
_STS_TORQUE = _STS["torque_enable"].address
_STS_RAM = (_STS_TORQUE, _STS_LOCK + 1)  # SRAM control, 40..55
_STS_PRESENT_GOAL = _STS["present_goal"].address
_STS_FACTORY = _STS["moving_velocity_threshold"].address  # 80: the factory area starts
_STS_CURRENT_UNIT_A = 0.0065
_STS_STATE = FEETECH.state_address  # 56: Present Position, the block a read refreshes
# The state block and Present Goal (67, inside the block's padding) in one pack: the layout of
# protocol.STS_STATE_BLOCK with its two pad bytes at 67 taken by Present Goal.
_STS_PRESENT = struct.Struct("<HHHBBxBBHH")
assert _STS_PRESENT.size == STS_STATE_BLOCK.size and _STS_PRESENT_GOAL == _STS_STATE + 11
# encode_sign_magnitude's limits and sign bits for 15- and 10-bit fields (inlined in refresh_present).
_M15, _S15 = (1 << 15) - 1, 1 << 15
_M10, _S10 = (1 << 10) - 1, 1 << 10


@dataclass
class _StsState:
    """What an STS firmware keeps per servo besides its memory table."""

    saved: bytearray  # the memory a power cycle restores the EPROM from: written with Lock 0
    offset: int = 0  # Homing Offset (ticks), cached from register 31
    limits: tuple[int, int] = (0, 4095)  # Min/Max Position Limit, cached from 9 and 11
    single_turn: bool = True  # the angle limits span a range: readings wrap at one turn
    # The protections' settings (EPROM), cached: Unloading Condition, Overload Torque (fraction),
    # Protection Time (s), Protective Torque (fraction), Protection Current (A), its time (s).
    unloading: int = 0
    overload: float = 0.8
    overload_time_s: float = 2.0
    protective: float = 0.2
    current_limit_a: float = 511 * _STS_CURRENT_UNIT_A
    current_time_s: float = 2.0
    overload_s: float = 0.0  # how long the output has been at or above Overload Torque
    overcurrent_s: float = 0.0  # how long the current has been at or above Protection Current
    alarms: int = 0  # status bits the protections raised (STS_OVERLOAD, STS_OVERCURRENT)
    protecting: bool = False  # overload protection holds the output at Protective Torque
    # Per-servo constants for the hot paths (spec and supply voltage never change after the
    # servo is built; the state is rebuilt by factory_defaults): ticks per turn, Present Voltage.
    turn: int = 4096
    voltage: int = 0


def _sts_state(servo: Servo) -> _StsState:
    state = servo._fw_state
    assert isinstance(state, _StsState), "an STS servo without its firmware state"
    return state


class FeetechFirmware(Firmware):
    """Feetech STS (STS3215/STS3250) firmware, after Feetech's SMS/STS memory table.

    * Homing Offset (31, sign bit 11): present = actual - offset, and a goal g is reached at
      actual = g + offset. With angle limits that span a range (the default 0..4095) the
      position feedback is single-turn: readings wrap at 4096 and a goal is taken in the turn
      the reading is in, as the position loop works on readings. Min/Max Position Limit
      clamp goals (readings' frame); with both 0 (multi-turn) nothing wraps.
    * EPROM and Lock (55): torque does not guard the EPROM. A write always takes effect; with
      Lock 0 it is also saved, with Lock 1 (the power-on value) it is lost at the next power
      cycle (`power_cycle`).
    * Writes the firmware refuses (`refuse_write`): addresses no register covers, spans that
      cut a multi-byte register, values outside the documented ranges (feetech_table.STS_RANGES).
    * Output cap: min(Torque Limit 48, Max Torque Limit 16); Torque Limit takes Max Torque
      Limit at power-on.
    * Protections: the output at or above Overload Torque (36, %) for Protection Time (35,
      10 ms) raises the overload bit (32); the current at or above Protection Current (28,
      6.5 mA) for Over-current Protection Time (38) the current bit (8). Where Unloading
      Condition (19) has the bit, the overload holds the output at Protective Torque (34, %)
      and the over-current turns torque off; the alarm then stays until torque is written 0.
    * Status (65): input voltage, overheat (from the servo) and the protections' bits.
    """

    protocol = FEETECH
    # Feetech publishes no gain units. Scale fitted to public bench tests of the
    # STS3215 at P = 32: 1.8–2.6° error holding 1.47 N·m (half its stall torque),
    # i.e. about 20 PWM units (of 1000) per tick.
    gain_scale = (0.625, 1.0 / 256.0, 0.25)
    # The STS memory table has no communication watchdog: watchdog stays None.

    def factory_defaults(self, servo: Servo) -> None:
        # Initial values of Feetech's STS memory table where it gives them; Unloading and LED
        # Alarm Condition, Phase, the speed-loop gains and the factory area (80..86) have no
        # STS3215 value in the documents: they stay 0 (no protection cuts the output).
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
        put("cw_dead_zone", 1)
        put("ccw_dead_zone", 1)
        put("protection_current", 511)
        put("angular_resolution", 1)
        put("protective_torque", 20)
        put("protection_time", 200)
        put("overload_torque", 80)
        put("overcurrent_protection_time", 200)
        put("lock", 1)
        state = _StsState(saved=bytearray(servo.regs))
        state.turn = s.resolution_ticks
        state.voltage = min(255, int(round(servo.supply_v * 10)))
        servo._fw_state = state
        self._cache(servo, state)

    def power_cycle(self, servo: Servo) -> None:
        """Power off and on: the EPROM as last saved (Lock 0), SRAM at its power-on values,
        alarms cleared, torque off, the goal where the shaft is. A changed id is the caller's
        to re-index."""
        state = _sts_state(servo)
        regs = servo.regs
        for lo, hi in _STS_EPROM:
            regs[lo:hi] = state.saved[lo:hi]
        lo, hi = _STS_RAM
        regs[lo:hi] = bytes(hi - lo)
        servo._set("torque_limit", servo._get("max_torque_limit"))
        servo._set("lock", 1)
        servo.faults = 0
        state.alarms, state.protecting, state.overload_s, state.overcurrent_s = 0, False, 0.0, 0.0
        self._cache(servo, state)
        here = math.floor(servo.position * servo._ticks_per_rad + 0.5) + servo._centre
        servo._set("goal_position", self.goal_ticks(servo, here))
        servo._load_settings()

    # -- writes -----------------------------------------------------------------------------
    def eeprom_locked(self, servo: Servo) -> bool:
        return False  # Lock decides whether an EPROM write is saved, not whether it is taken

    def refuse_write(self, servo: Servo, address: int, data: bytes) -> tuple[str, str] | None:
        end = address + len(data)
        at = address
        while at < end:
            reg = _STS_OWNER[at]
            if reg is None:
                return f"no register at address {at} (a write of {len(data)} bytes at {address})", "range"
            lo, hi = reg.address, reg.address + reg.size
            if lo < address or hi > end:
                cut = f"covers only part of {reg.name} ({lo}..{hi - 1})"
                return f"a write of {len(data)} bytes at {address} {cut}", "range"
            bounds = STS_RANGES.get(reg.name)
            if bounds is not None:
                raw = bytes(data[lo - address : hi - address])
                value = reg.decode(raw)
                stray = reg.sign_bit is not None and int.from_bytes(raw, "little") >> (reg.sign_bit + 1)
                if stray or not bounds[0] <= value <= bounds[1]:
                    shown = f"0x{int.from_bytes(raw, 'little'):04X}" if stray else str(value)
                    return f"{reg.name} takes {bounds[0]}..{bounds[1]}, got {shown}", "limit"
            at = hi
        return None

    def written(self, servo: Servo, address: int, data: bytes) -> None:
        state = _sts_state(servo)
        end = address + len(data)
        regs = servo.regs
        if address <= _STS_TORQUE < end and regs[_STS_TORQUE] == 0:
            # Torque off resets the protections (and clears their alarms).
            state.alarms, state.protecting, state.overload_s, state.overcurrent_s = 0, False, 0.0, 0.0
        if address >= _STS_TORQUE and end <= _STS_FACTORY:
            return  # SRAM only (goals among them): nothing to save, nothing cached changed
        if regs[_STS_LOCK] == 0:
            for lo, hi in _STS_EPROM:
                if lo < end and address < hi:
                    state.saved[lo:hi] = regs[lo:hi]
        self._cache(servo, state)

    @staticmethod
    def _cache(servo: Servo, state: _StsState) -> None:
        state.offset = servo._get("homing_offset")
        state.limits = lo, hi = servo._get("min_position_limit"), servo._get("max_position_limit")
        state.single_turn = hi > lo
        g = servo._get
        state.unloading = g("unloading_condition")
        state.overload, state.overload_time_s = g("overload_torque") / 100.0, g("protection_time") * 0.01
        state.protective = g("protective_torque") / 100.0
        state.current_limit_a = g("protection_current") * _STS_CURRENT_UNIT_A
        state.current_time_s = g("overcurrent_protection_time") * 0.01

    # -- positions --------------------------------------------------------------------------
    def goal_written(self, servo: Servo, address: int, data: bytes) -> None:
        """Goal Position is SRAM: nothing to save and no cached setting changes (see `written`)."""

    def goal_angle(self, servo: Servo, ticks: int) -> float:
        state: _StsState = servo._fw_state  # on every goal write: no checked lookup
        offset, centre = state.offset, servo._centre
        if state.single_turn:
            lo, hi = state.limits
            actual = (lo if ticks < lo else (hi if ticks > hi else ticks)) + offset
            # The loop works on readings: the goal is in the turn the reading is in.
            reading = math.floor(servo.position * servo._ticks_per_rad + 0.5) + centre - offset
            turn = state.turn
            actual += turn * (reading // turn)
        else:
            actual = ticks + offset
        return (actual - centre) / servo._ticks_per_rad

    def goal_ticks(self, servo: Servo, actual_ticks: int) -> int:
        state: _StsState = servo._fw_state
        ticks = actual_ticks - state.offset
        return ticks % state.turn if state.single_turn else ticks

    # -- drive and feedback ------------------------------------------------------------------
    def load_drive(self, servo: Servo) -> Drive:
        g, full, per_rad = servo._get, servo._full_pwm, servo._ticks_per_rad
        state = _sts_state(servo)
        # In PWM mode Goal Time holds the PWM: 10 bits and a sign bit (bit 10).
        pwm_reg = servo.table["goal_time"]
        raw = int.from_bytes(servo.regs[pwm_reg.address : pwm_reg.address + 2], "little")
        cap = min(g("torque_limit"), g("max_torque_limit"), self.protocol.full_pwm) / full
        if state.protecting:
            cap = min(cap, state.protective)
        return Drive(
            open_pwm=(-(raw & 0x3FF) if raw & 0x400 else (raw & 0x3FF)) / full,
            goal_velocity=g("goal_speed") / per_rad,
            # Feetech publishes no speed-loop gains: a PI loop that settles in ~0.1 s.
            kv_p=0.3 * full / servo._w0,
            kv_i=0.01 * full / servo._w0,
            pwm_cap=cap,
            profile_velocity=abs(g("goal_speed")) / per_rad,
            profile_acceleration=g("acceleration") * 100.0 / per_rad,
        )

    def refresh_present(self, servo: Servo, ticks: int, moving: int, temperature: int) -> None:
        # On every read of every servo: goal_ticks and encode_sign_magnitude are inlined
        # (encode_sign_magnitude(v, bit): min(v, M) for v >= 0, else min(-v, M) | S).
        state: _StsState = servo._fw_state
        offset, turn, single_turn = state.offset, state.turn, state.single_turn
        per_rad = servo._ticks_per_rad
        position = ticks - offset  # goal_ticks(servo, ticks)
        if single_turn:
            position %= turn
        if position < 0:
            position = (-position if -position < _M15 else _M15) | _S15
        elif position > _M15:
            position = _M15
        speed = int(round(servo.velocity * per_rad))
        if speed < 0:
            speed = (-speed if -speed < _M15 else _M15) | _S15
        elif speed > _M15:
            speed = _M15
        load = int(round(1000.0 * servo.pwm))
        if load < 0:
            load = (-load if -load < _M10 else _M10) | _S10
        elif load > _M10:
            load = _M10
        current = int(round(servo.current_a / _STS_CURRENT_UNIT_A))
        if current < 0:
            current = (-current if -current < _M15 else _M15) | _S15
        elif current > _M15:
            current = _M15
        target = math.floor(servo._setpoint * per_rad + 0.5) + servo._centre - offset  # goal_ticks
        if single_turn:
            target %= turn
        if target < 0:
            target = (-target if -target < _M15 else _M15) | _S15
        elif target > _M15:
            target = _M15
        _STS_PRESENT.pack_into(
            servo.regs,
            _STS_STATE,
            position,
            speed,
            load,
            state.voltage,
            temperature,
            servo.faults & _STS_REPORTED | state.alarms,
            moving,
            target,
            current,
        )

    # -- protections -------------------------------------------------------------------------
    def monitor(self, servo: Servo, dt: float) -> None:
        state: _StsState = servo._fw_state  # every few physics steps: no checked lookup
        if not servo._torque_on:
            state.overload_s = state.overcurrent_s = 0.0
            return
        if not state.protecting:
            if abs(servo.pwm) >= state.overload:
                state.overload_s += dt
                if state.overload_s >= state.overload_time_s:
                    state.alarms |= STS_OVERLOAD
                    if state.unloading & STS_OVERLOAD:
                        state.protecting = True
                        servo._pwm_cap = min(servo._pwm_cap, state.protective)
            else:
                state.overload_s = 0.0
                state.alarms &= ~STS_OVERLOAD
        if servo.current_a >= state.current_limit_a:
            state.overcurrent_s += dt
            if state.overcurrent_s >= state.current_time_s:
                state.alarms |= STS_OVERCURRENT
                if state.unloading & STS_OVERCURRENT:
                    servo._torque_on = False
                    servo._set("torque_enable", 0)
        else:
            state.overcurrent_s = 0.0
            state.alarms &= ~STS_OVERCURRENT


FIRMWARE: Mapping[Protocol, Firmware] = {DYNAMIXEL: DynamixelFirmware(), FEETECH: FeetechFirmware()}


def firmware_for(protocol: Protocol) -> Firmware:
    try:
        return FIRMWARE[protocol]
    except KeyError:
        raise ConfigError(f"the twin has no firmware model for protocol {protocol.name!r}") from None
