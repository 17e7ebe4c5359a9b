"""A virtual servo: control table, firmware and motor, stepped with the physics.

Each physics step the plant hands the servo its output-shaft angle and speed
(rad, rad/s, in the servo's own frame) and applies the torque it returns
(N·m). Between steps the bus (or the emulator) reads and writes the control
table through `read` and `write`, exactly as over a wire.

Motor: a DC motor behind a gearbox, as a voltage-limited torque-speed line
at the output, tau = k_v·V − k_w·omega, clamped to the stall torque at the supply
voltage. k_v and k_w are chosen so that the *net* output after friction
passes through the datasheet points: tau_stall at zero speed and zero torque at
the no-load speed. Coulomb friction is smoothed near zero speed so that a
held load sees the full stall torque. Backlash: when the motor torque
reverses, nothing is transmitted until the motor side has crossed the gap at
its free-running speed. Heating: I²R into a first-order thermal mass; at the
temperature limit the firmware cuts torque and raises the overheat alarm,
which stays latched (torque cannot be enabled) until the servo is rebooted.

Firmware: position PID on encoder ticks in the vendor's gain units, with a
trapezoidal profile (profile velocity/acceleration); velocity PI; open-loop
PWM; current control (Dynamixel mode 0) and current-based position control
(mode 5). The current loop is taken as ideal (the e-Manual gives no gains for
it): in current mode the PWM is what makes the motor's torque kt·I for the goal
current at the present speed; in current-based position mode the position
loop's torque is capped at kt·|Goal Current|, kt = stall torque / stall current
(the datasheet's line through the stall point, e.g. XL330-M288 0.52 N·m at
1.47 A: 0.354 N·m/A; ROBOTIS gives the same figure in N·m/A for the XC330).
Which table, modes and registers a model has come from its firmware object
(`firmware.Firmware.table_for`, `operating_modes`). Modes the twin does not
model (Feetech step mode) are refused when written, rather than silently run
as something else.

Communication watchdog (Dynamixel's Bus Watchdog, see firmware.Watchdog): every
read and write counts as an instruction reaching the servo, and `heard(t)` tells
it of the others (a ping, a broadcast); a servo armed with torque on that hears
nothing for longer than the register says stops where it is, on the servo's own
clock (virtual time in a run, the emulator's wall clock behind a pty).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any

from servo_core.catalogue import ServoSpec
from servo_core.control_table import ControlTable
from servo_core.dynamixel_table import GOAL_POSITION_EXTENDED
from servo_core.errors import ConfigError
from sim_models.servo.firmware import (
    FAULT_INPUT_VOLTAGE,
    FAULT_OVERHEAT,
    Firmware,
    firmware_for,
)

__all__ = ["RegisterError", "Undo", "VirtualServo"]

Undo = Callable[[], None]


# Modes whose goals count turns: Goal Position takes ±GOAL_POSITION_EXTENDED (Data Range Error beyond).
_MULTI_TURN = frozenset({"extended position", "current-based position"})

_SMOOTH_FRICTION_RAD_S = 0.02
_INV_SMOOTH = 1.0 / _SMOOTH_FRICTION_RAD_S
# The thermal time constant is tens of seconds: integrating it every 10 steps
# loses nothing and keeps the per-step cost down.
_HEAT_EVERY = 10
_AMBIENT_C = 25.0


class RegisterError(ConfigError):
    """An access the firmware refuses. `kind` says why, as a status packet would:
    "range" (outside the table), "access" (read-only, or EEPROM while torque is on)
    or "limit" (a value the firmware does not take)."""

    def __init__(self, message: str, kind: str = "range") -> None:
        super().__init__(message)
        self.kind = kind


class VirtualServo:
    """One simulated servo. Angles are output-shaft rad with 0 at the centre tick (resolution // 2)."""

    # Slots: step() runs for every servo in every physics step, and slot access is cheaper.
    __slots__ = (
        "_centre",
        "_coulomb",
        "_encoder_noise",
        "_external_torque_nm",
        "_fw",
        "_fw_state",
        "_tau_m",
        "_current_mode",
        "_current_goal",
        "_current_torque_cap",
        "_capped",
        "_position_loop",
        "_goal_kind",
        "_shutdown",
        "_full_pwm",
        "_gain_scale",
        "_static",
        "_inv_stribeck",
        "_load_ratio",
        "_off_brake",
        "_latency",
        "_delayed",
        "implicit_friction",
        "dry_friction_nm",
        "_goal",
        "_goal_range",
        "_goal_reg",
        "_goal_reg_bounds",
        "_table_size",
        "_goal_velocity",
        "_half_gap",
        "_heat_acc",
        "_heat_steps",
        "_integral",
        "_kd",
        "_ki",
        "_refuses_goals",
        "_max_id",
        "_modes",
        "_kp",
        "_kt",
        "_kv",
        "_kv_i",
        "_kv_p",
        "_kv_supply",
        "_kw",
        "_mode",
        "_open_pwm",
        "_pid_full",
        "_present_start",
        "_prev_error",
        "_profile_a",
        "_profile_v",
        "_profiled",
        "_pwm_cap",
        "_pwm_mode",
        "_setpoint",
        "_sp_velocity",
        "_tau_max",
        "_temp_limit",
        "_ticks_per_rad",
        "_torque_on",
        "_wd",
        "_wd_deadline",
        "_wd_fired",
        "_wd_goal_spans",
        "_wd_heard",
        "_wd_period",
        "_velocity_mode",
        "_viscous",
        "_w0",
        "current_a",
        "faults",
        "gap",
        "position",
        "pwm",
        "regs",
        "return_delay_s",
        "spec",
        "supply_v",
        "temperature_c",
        "time_s",
        "velocity",
        "table",
        "protocol",
    )

    # Set by _load_settings() (from the firmware's load_drive()) rather than __init__:
    # declared here so their types are known. Annotations only, so no clash with __slots__.
    _torque_on: bool
    _kp: float
    _ki: float
    _kd: float
    _goal: float
    _temp_limit: float
    return_delay_s: float
    _mode: str
    _pwm_mode: bool
    _velocity_mode: bool
    _goal_range: tuple[int, int]
    _profile_v: float
    _profile_a: float
    _profiled: bool
    _pid_full: bool
    _open_pwm: float  # open-loop PWM, a fraction of full scale
    _goal_velocity: float  # rad/s
    _kv_p: float  # velocity loop gains, PWM units per rad/s (and per rad/s·step)
    _kv_i: float
    _pwm_cap: float  # a fraction of full scale
    _current_mode: bool  # current control: the loop holds _current_goal
    _current_goal: float  # A
    _current_torque_cap: float  # N·m: kt × the current cap (current modes); inf: no cap
    _capped: bool  # whether _current_torque_cap is below _tau_max (else the cap never bites)
    _position_loop: bool  # neither PWM, velocity nor current mode: the position PID runs
    _goal_kind: str  # the RegisterError kind of a goal outside goal_range
    _shutdown: int  # the alarm bits that cut torque
    _fw_state: Any  # the firmware's own per-servo state (firmware.py), set by its factory_defaults

    def __init__(self, spec: ServoSpec, servo_id: int, supply_v: float | None = None) -> None:
        self.spec = spec
        self.protocol = spec.bus_protocol
        self._fw = firmware_for(self.protocol)
        self.table: ControlTable = self._fw.table_for(spec)
        self.supply_v = spec.nominal_voltage_v if supply_v is None else supply_v
        self.regs = bytearray(self.table.size)
        self._refuses_goals = self.protocol.refuses_out_of_range_goals
        self._max_id = self.protocol.max_id
        self._modes = self._fw.operating_modes(spec)
        w0 = spec.no_load_speed_rad_s
        self._kv = spec.stall_torque_nm / spec.nominal_voltage_v
        self._kw = (
            spec.stall_torque_nm - spec.coulomb_friction_nm - spec.viscous_friction_nm_s_per_rad * w0
        ) / w0
        self._kv_supply = self._kv * self.supply_v
        self._tau_max = spec.stall_torque_nm * self.supply_v / spec.nominal_voltage_v
        self._w0 = w0
        self._coulomb = spec.coulomb_friction_nm
        self._viscous = spec.viscous_friction_nm_s_per_rad
        self._static = spec.static_friction_nm
        self._inv_stribeck = 1.0 / spec.stribeck_velocity_rad_s if spec.stribeck_velocity_rad_s > 0 else 0.0
        self._load_ratio = spec.load_friction_ratio
        self._off_brake = spec.off_brake_ratio * self._kw
        self._latency = spec.command_latency_s
        self._delayed: deque[tuple[float, float]] = deque()
        # Dry friction that must hold the shaft still is solved by the physics engine (a
        # velocity motor with this much force), not applied as a torque: see Plant.
        self.implicit_friction = self._static > 0.0 or self._load_ratio > 0.0
        self.dry_friction_nm = 0.0
        self._heat_acc = 0.0
        self._heat_steps = 0
        self._external_torque_nm = 0.0  # fault injection: a load against the output shaft (N·m)
        self._encoder_noise: Callable[[], float] | None = None  # fault injection: rad added to readings
        self._kt = spec.stall_torque_nm / spec.stall_current_a
        self._ticks_per_rad = spec.resolution_ticks / (2.0 * math.pi)
        self._half_gap = math.radians(spec.backlash_deg) / 2.0
        self._full_pwm = float(self.protocol.full_pwm)
        self._gain_scale = self._fw.gain_scale
        self.temperature_c = _AMBIENT_C
        self.current_a = 0.0
        self._tau_m = 0.0
        self.position = 0.0
        self.velocity = 0.0
        self.pwm = 0.0
        self.gap = -self._half_gap
        self.faults = 0
        self.time_s = 0.0
        self._setpoint = 0.0
        self._sp_velocity = 0.0
        self._integral = 0.0
        self._prev_error = 0.0
        self._centre = spec.resolution_ticks // 2
        self._goal_reg = goal = self.table["goal_position"]
        self._goal_reg_bounds: tuple[int, int] = (goal.lowest, goal.highest)
        self._table_size = self.table.size
        # Reads that reach the present-value area refresh it.
        self._present_start = self.table[self.protocol.refresh_register].address
        wd = self._wd = self._fw.watchdog
        goals = () if wd is None else (self.table[wd.pwm_goal], self.table[wd.velocity_goal], self._goal_reg)
        self._wd_goal_spans = tuple((r.address, r.address + r.size) for r in goals)
        self._wd_heard = 0.0  # when the last instruction reached the servo (s, its clock)
        self._wd_period = math.inf
        self._wd_deadline = math.inf  # when it fires unless an instruction comes first
        self._wd_fired = False
        self._fw_state = None
        self._factory_defaults(servo_id)

    # -- control table ---------------------------------------------------
    def _set(self, name: str, value: int) -> None:
        reg = self.table[name]
        self.regs[reg.address : reg.address + reg.size] = reg.encode(value)

    def _get(self, name: str) -> int:
        reg = self.table[name]
        return reg.decode(bytes(self.regs[reg.address : reg.address + reg.size]))

    def _factory_defaults(self, servo_id: int) -> None:
        s = self.spec
        self._set("model_number", s.model_number)
        self._set("id", servo_id)
        self._set("temperature_limit", int(s.temperature_limit_c))
        self._set("position_p_gain", s.position_p_gain)
        self._set("position_i_gain", s.position_i_gain)
        self._set("position_d_gain", s.position_d_gain)
        self._set("return_delay_time", int(round(s.return_delay_us / 2.0)))
        self._fw.factory_defaults(self)
        self._set("goal_position", s.resolution_ticks // 2)
        self._load_settings()

    @property
    def servo_id(self) -> int:
        return self._get("id")

    @property
    def goal_range(self) -> tuple[int, int]:
        """Goal positions (ticks) the firmware takes in its current mode."""
        return self._goal_range

    @property
    def torque_enabled(self) -> bool:
        return self._torque_on

    def write(self, address: int, data: bytes) -> None:
        """Write raw bytes as a protocol write would. RegisterError on bad access."""
        self.heard()
        goal = self._goal_reg
        if address == goal.address and len(data) == goal.size:  # the hot path: a new goal
            if self._wd_fired:
                raise RegisterError("goal position is read-only: the bus watchdog has fired", "range")
            self._take_goal(goal.decode(data), data)
            return
        end = address + len(data)
        if address < 0 or end > self.table.size:
            raise RegisterError(f"write of {len(data)} bytes at {address} is outside the table", "access")
        for reg in self.table.registers:
            if reg.address < end and address < reg.address + reg.size:
                if reg.access == "R":
                    raise RegisterError(f"register {reg.name} ({reg.address}) is read-only", "access")
                if reg.eeprom and self._fw.eeprom_locked(self):
                    raise RegisterError(f"EEPROM register {reg.name} is locked while torque is on", "access")
        if self._wd_fired and any(a < end and address < b for a, b in self._wd_goal_spans):
            raise RegisterError("goal registers are read-only: the bus watchdog has fired", "range")
        refusal = self._fw.refuse_write(self, address, data)
        if refusal is not None:
            raise RegisterError(*refusal)
        self._check_watchdog_write(address, data)
        id_reg = self.table["id"]
        if address <= id_reg.address < end:
            new_id = data[id_reg.address - address]
            top = self._max_id
            if new_id > top:
                raise RegisterError(f"id {new_id} is out of range 0..{top}", "limit")
        torque_reg = self.table["torque_enable"]
        if address <= torque_reg.address < end and data[torque_reg.address - address] > 1:
            raise RegisterError(
                f"torque enable takes 0 or 1, got {data[torque_reg.address - address]}", "range"
            )
        mode_reg = self.table["operating_mode"]
        if address <= mode_reg.address < end:
            mode = data[mode_reg.address - address]
            modes = self._modes
            if mode not in modes:
                raise RegisterError(
                    f"operating mode {mode} is not modelled by the twin; modelled: "
                    + ", ".join(f"{k} ({v})" for k, v in modes.items()),
                    "limit",
                )
        was_on = self._torque_on
        self.regs[address:end] = data
        self._fw.written(self, address, data)
        self._load_settings()
        if self._torque_on and not was_on:
            self._on_torque_enable()

    def read(self, address: int, length: int) -> bytes:
        """Read raw bytes; present values are encoded from the physics first."""
        self.heard()
        end = address + length
        if address < 0 or length < 0 or end > self._table_size:
            raise RegisterError(f"read of {length} bytes at {address} is outside the table", "access")
        if end > self._present_start:
            self._refresh_present()
        return bytes(self.regs[address:end])

    def write_register(self, name: str, value: int) -> None:
        """Write one register by name, encoded as the protocol would (RegisterError if refused)."""
        if name == "goal_position":  # the hot path: as write(), without decoding what was just encoded
            data = self._goal_reg.encode(value)  # saturated to the register's range
            lo, hi = self._goal_reg_bounds
            self.heard()
            if self._wd_fired:
                raise RegisterError("goal position is read-only: the bus watchdog has fired", "range")
            self._take_goal(lo if value < lo else (hi if value > hi else value), data)
            return
        reg = self.table[name]
        self.write(reg.address, reg.encode(value))

    def _take_goal(self, ticks: int, data: bytes) -> None:
        """A write of Goal Position alone (`data`, holding `ticks`), the watchdog checked."""
        lo, hi = self._goal_range
        if ticks < lo or ticks > hi:
            if self._refuses_goals:  # Dynamixel: Data Limit (position limits) or Range Error
                raise RegisterError(
                    f"goal position {ticks} is outside the goal range [{lo}, {hi}]", self._goal_kind
                )
            ticks = lo if ticks < lo else hi  # Feetech clamps to its angle limits
            data = self._goal_reg.encode(ticks)
        address = self._goal_reg.address
        self.regs[address : address + len(data)] = data
        fw = self._fw
        fw.goal_written(self, address, data)
        angle = fw.goal_angle(self, ticks)
        if self._latency > 0.0:  # the firmware acts on a new goal this much later
            self._delayed.append((self.time_s + self._latency, angle))
        else:
            self._goal = angle

    def heard(self, t: float | None = None) -> None:
        """An instruction packet reached the servo at `t` (s on its clock; default: now).

        Feeds the watchdog. The emulator passes the wall-clock time a packet arrived, which
        may be ahead of the plant: a deadline that passed before `t` fires first.
        """
        if t is None:
            t = self.time_s
        if t > self._wd_deadline:
            self._watchdog_fire()
        elif t > self._wd_heard:
            self._wd_heard = t
            if self._wd_deadline != math.inf:
                self._wd_deadline = t + self._wd_period

    @property
    def watchdog_fired(self) -> bool:
        """Whether the communication watchdog has stopped the servo (cleared by writing 0 to it)."""
        return self._wd_fired

    def read_register(self, name: str) -> int:
        """Read one register by name, present values refreshed from the physics."""
        reg = self.table[name]
        return reg.decode(self.read(reg.address, reg.size))

    def poke(self, name: str, value: int) -> None:
        """Store a register's value as the firmware itself does (no checks, no bus cost): what
        an instruction sets besides a write (Registered Instruction on REG_WRITE)."""
        self._set(name, value)

    def peek(self, name: str) -> int:
        """A register's stored value, without refreshing present values (no bus cost)."""
        return self._get(name)

    def add_external_torque(self, torque_nm: float) -> Undo:
        """Fault injection: a load of `torque_nm` (N·m) against the output shaft. Returns the undo."""
        if not math.isfinite(torque_nm):
            raise ConfigError(f"an external torque must be a finite number of N·m, got {torque_nm!r}")
        self._external_torque_nm += torque_nm

        def undo() -> None:
            self._external_torque_nm -= torque_nm

        return undo

    def set_encoder_noise(self, sampler: Callable[[], float]) -> Undo:
        """Fault injection: `sampler()` rad added to every position reading. Returns the undo,
        which restores the noise there was before."""
        before = self._encoder_noise
        self._encoder_noise = sampler

        def undo() -> None:
            self._encoder_noise = before

        return undo

    @property
    def firmware(self) -> Firmware:
        """The firmware model this servo runs (its protocol's)."""
        return self._fw

    @property
    def goal_rad(self) -> float:
        """Where the firmware is taking the shaft (rad, the shaft's own frame, as `position`)."""
        return self._goal

    @property
    def external_torque_nm(self) -> float:
        """The injected load against the output shaft (N·m); read-only."""
        return self._external_torque_nm

    def force_overheat(self) -> None:
        """Fault injection: the motor is at its temperature limit; the firmware shuts down."""
        self.temperature_c = max(self.temperature_c, self._temp_limit)
        self.faults |= FAULT_OVERHEAT
        self._torque_on = False
        self._set("torque_enable", 0)

    def factory_reset(self) -> None:
        """Control table back to its defaults, keeping the id (Dynamixel reset mode 0x02)."""
        servo_id = self.servo_id
        self.regs = bytearray(self.table.size)
        self.faults = 0
        self._factory_defaults(servo_id)

    def reboot(self) -> None:
        """Clear alarms, torque off and watchdog off, as the vendor's reboot instruction does."""
        self.faults = 0
        self._set("torque_enable", 0)
        if self._wd is not None:
            self._set(self._wd.register, 0)
        self._fw.rebooted(self)
        self._load_settings()

    def _load_settings(self) -> None:
        g = self._get
        volts = self.supply_v * 10
        if volts < g("min_voltage_limit") or volts > g("max_voltage_limit"):
            self.faults |= FAULT_INPUT_VOLTAGE  # an alarm only: it does not cut torque
        else:
            self.faults &= ~FAULT_INPUT_VOLTAGE
        self._shutdown = self._fw.shutdown_mask(self)
        self._torque_on = bool(g("torque_enable")) and not self.faults & self._shutdown
        if not self._torque_on and g("torque_enable"):
            self._set("torque_enable", 0)
        kp, ki, kd = self._gain_scale
        self._kp = g("position_p_gain") * kp * self.spec.p_gain_scale
        self._ki = g("position_i_gain") * ki
        self._kd = g("position_d_gain") * kd
        self._goal = self._fw.goal_angle(self, g("goal_position"))
        self._temp_limit = float(g("temperature_limit"))
        self.return_delay_s = g("return_delay_time") * 2e-6
        self._mode = self._modes[g("operating_mode")]
        self._pwm_mode = self._mode == "pwm"
        self._velocity_mode = self._mode == "velocity"
        self._current_mode = self._mode == "current"
        self._position_loop = not (self._pwm_mode or self._velocity_mode or self._current_mode)
        lo, hi = g("min_position_limit"), g("max_position_limit")
        if self._mode == "position" and hi > lo:
            self._goal_range, self._goal_kind = (lo, hi), "limit"
        elif self._mode in _MULTI_TURN:
            self._goal_range, self._goal_kind = (-GOAL_POSITION_EXTENDED, GOAL_POSITION_EXTENDED), "range"
        else:
            self._goal_range, self._goal_kind = (-(2**31), 2**31 - 1), "range"
        drive = self._fw.load_drive(self)
        self._current_goal = drive.current_goal_a
        self._current_torque_cap = self._kt * drive.current_cap_a  # inf stays inf
        # Below the stall torque the cap can bite; at or above it the clamp to _tau_max already holds it.
        self._capped = self._current_torque_cap < self._tau_max
        self._open_pwm, self._goal_velocity = drive.open_pwm, drive.goal_velocity
        self._kv_p, self._kv_i, self._pwm_cap = drive.kv_p, drive.kv_i, drive.pwm_cap
        vel, acc = drive.profile_velocity, drive.profile_acceleration
        self._profile_v = vel if vel > 0 else math.inf
        self._profile_a = acc if acc > 0 else math.inf
        self._profiled = vel > 0 or acc > 0
        self._pid_full = self._ki != 0.0 or self._kd != 0.0
        wd = self._wd
        if wd is not None:
            units = g(wd.register)
            self._wd_fired = units < 0
            self._wd_period = units * wd.unit_s if units > 0 else math.inf
            armed = units > 0 and self._torque_on
            self._wd_deadline = self._wd_heard + self._wd_period if armed else math.inf

    def _check_watchdog_write(self, address: int, data: bytes) -> None:
        """The watchdog register takes 0 (off, clears a fired watchdog) or 1..max (armed, not fired)."""
        wd = self._wd
        if wd is None:
            return
        reg = self.table[wd.register]
        if not address <= reg.address < address + len(data):
            return
        units = reg.decode(bytes(data[reg.address - address : reg.address - address + 1]))
        if units < 0 or units > wd.max_units:
            raise RegisterError(f"bus watchdog takes 0..{wd.max_units}, got {units}", "range")
        if units and self._wd_fired:
            raise RegisterError("the bus watchdog has fired: write 0 to clear it, then arm it", "range")

    def _watchdog_fire(self) -> None:
        """Nothing reached the servo for longer than its watchdog allows: stop where it is."""
        wd = self._wd
        assert wd is not None  # a deadline is only ever set when the firmware has a watchdog
        self._set(wd.register, -1)
        self._wd_fired = True
        self._wd_deadline = math.inf
        self._hold_here()
        if self._velocity_mode:
            self._set(wd.velocity_goal, 0)
            self._goal_velocity = 0.0
        elif self._pwm_mode:
            self._set(wd.pwm_goal, 0)
            self._open_pwm = 0.0
        elif self._current_mode:
            if "goal_current" in self.table:
                self._set("goal_current", 0)
            self._current_goal = 0.0

    def _hold_here(self) -> None:
        """Goal := the present position, reached at once (no profile)."""
        ticks = int(math.floor(self.position * self._ticks_per_rad + 0.5))
        self._set("goal_position", self._fw.goal_ticks(self, ticks + self._centre))
        self._goal = ticks / self._ticks_per_rad
        self._delayed.clear()
        self._setpoint = self.position
        self._sp_velocity = 0.0

    def _on_torque_enable(self) -> None:
        # The firmware starts holding where the shaft is (goal := present), not
        # where it was told before torque went off: no jump on enable.
        self._hold_here()
        self._integral = 0.0
        self._prev_error = 0.0

    def _refresh_present(self) -> None:
        """Encode the present values (position, speed, load, ...) from the physics state.

        One struct pack per read: reads happen for every servo in every bus
        cycle, so this is on the hot path of a run.
        """
        noise = self._encoder_noise
        position = self.position if noise is None else self.position + noise()
        ticks = math.floor(position * self._ticks_per_rad + 0.5) + self._centre
        velocity = self.velocity
        moving = 1 if velocity > 0.02 or velocity < -0.02 else 0
        temperature = int(round(self.temperature_c))
        temperature = 0 if temperature < 0 else (255 if temperature > 255 else temperature)
        self._fw.refresh_present(self, ticks, moving, temperature)

    # -- physics ----------------------------------------------------------
    def step(self, position: float, velocity: float, dt: float) -> float:
        """Advance firmware and motor by dt; return the output torque (N·m).

        This runs once per servo per physics step: it is written flat, with
        locals, because attribute lookups and calls dominate its cost.
        """
        self.position = position
        self.velocity = velocity
        t = self.time_s + dt
        self.time_s = t
        if t > self._wd_deadline:
            self._watchdog_fire()
        delayed = self._delayed
        while delayed and delayed[0][0] <= t:
            self._goal = delayed.popleft()[1]
        if self._torque_on:
            if self._position_loop:  # the common case first: one test instead of three
                if self._profiled:
                    sp = self._advance_setpoint(dt)
                else:
                    sp = self._setpoint = self._goal
                error = (sp - position) * self._ticks_per_rad
                error = float(int(error + 0.5) if error >= 0.0 else -int(0.5 - error))  # encoder ticks
                u = self._kp * error
                if self._pid_full:
                    self._integral += error
                    u += self._ki * self._integral + self._kd * (error - self._prev_error)
                    self._prev_error = error
                u /= self._full_pwm
            elif self._pwm_mode:
                u = self._open_pwm
            elif self._velocity_mode:
                u = self._velocity_control()
            else:  # current mode: an ideal current loop, the PWM that gives kt·I now
                u = (self._kt * self._current_goal + self._kw * velocity) / self._kv_supply
            cap = self._pwm_cap
            u = cap if u > cap else (-cap if u < -cap else u)
            kw = self._kw
            tau_m = self._kv_supply * u - kw * velocity
            tmax = self._tau_max
            tau_m = tmax if tau_m > tmax else (-tmax if tau_m < -tmax else tau_m)
            if self._capped:  # Current Limit / Goal Current: what the current allows
                limit = self._current_torque_cap
                if tau_m > limit or tau_m < -limit:
                    tau_m = limit if tau_m > 0.0 else -limit
                    u = (tau_m + kw * velocity) / self._kv_supply
            tau = tau_m
            half = self._half_gap
            if half > 0.0:  # backlash: nothing passes while the motor crosses the gap
                gap = self.gap
                if tau_m > 0.0:
                    if gap < half:
                        gap += (abs(u) if u > 0.05 or u < -0.05 else 0.05) * self._w0 * dt
                        self.gap = gap if gap < half else half
                        if gap < half:
                            tau = 0.0
                elif tau_m < 0.0 and gap > -half:
                    gap -= (abs(u) if u > 0.05 or u < -0.05 else 0.05) * self._w0 * dt
                    self.gap = gap if gap > -half else -half
                    if gap > -half:
                        tau = 0.0
        else:
            # Torque off: the driver coasts (ratio 0) or brakes the winding (1, back-EMF damping).
            u = 0.0
            tau_m = tau = -self._off_brake * velocity
        self.pwm = u
        self._tau_m = tau_m
        if self.implicit_friction:
            x = velocity * self._inv_stribeck
            self.dry_friction_nm = self._static * math.exp(-x * x) + self._load_ratio * abs(tau_m)
        s = velocity * _INV_SMOOTH
        s = 1.0 if s > 1.0 else (-1.0 if s < -1.0 else s)
        tau -= self._coulomb * s + self._viscous * velocity + self._external_torque_nm
        self._heat_acc += tau_m * tau_m
        n = self._heat_steps + 1
        self._heat_steps = n
        if n >= _HEAT_EVERY:
            self._heat(dt)
        return tau

    def _velocity_control(self) -> float:
        """Velocity PI (Dynamixel mode 1, Feetech wheel mode), per control tick."""
        error = self._goal_velocity - self.velocity
        self._integral += error
        return (self._kv_p * error + self._kv_i * self._integral) / self._full_pwm

    def _advance_setpoint(self, dt: float) -> float:
        """Trapezoidal profile towards the goal (profile velocity/acceleration); returns the new setpoint."""
        sp, goal = self._setpoint, self._goal
        vmax, amax = self._profile_v, self._profile_a
        dist = goal - sp
        v_stop = math.sqrt(2.0 * amax * abs(dist)) if amax != math.inf else vmax
        v_target = math.copysign(min(vmax, v_stop), dist)
        v = self._sp_velocity
        dv = v_target - v
        step_a = amax * dt
        v += step_a if dv > step_a else (-step_a if dv < -step_a else dv)
        sp += v * dt
        if (dist > 0 and sp > goal) or (dist < 0 and sp < goal):
            sp, v = goal, 0.0
        self._sp_velocity = v
        self._setpoint = sp
        return sp

    def _heat(self, dt: float) -> None:
        """I²R heating into a first-order thermal mass, over the steps since the last call."""
        spec = self.spec
        n = self._heat_steps
        mean_sq_current = self._heat_acc / n / (self._kt * self._kt)
        self.current_a = math.sqrt(mean_sq_current)
        power = mean_sq_current * spec.winding_resistance_ohm
        t = self.temperature_c
        t += (
            n
            * dt
            * (power - (t - _AMBIENT_C) / spec.thermal_resistance_k_per_w)
            / spec.thermal_capacity_j_per_k
        )
        self.temperature_c = t
        self._heat_acc = 0.0
        self._heat_steps = 0
        if t >= self._temp_limit and not self.faults & FAULT_OVERHEAT:
            self.faults |= FAULT_OVERHEAT
            if self._shutdown & FAULT_OVERHEAT:
                self._torque_on = False
                self._set("torque_enable", 0)
        self._fw.monitor(self, n * dt)
