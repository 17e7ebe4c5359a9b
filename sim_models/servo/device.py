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
trapezoidal profile (profile velocity/acceleration); velocity PI; or
open-loop PWM. Modes the twin does not model (current control, Feetech step
mode) are refused when written, rather than silently run as something else.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable

from sim_models.errors import ConfigError
from sim_models.servo.catalogue import ServoSpec
from sim_models.servo.control_table import TABLES, ControlTable

# Dynamixel X position controller, after the e-Manual's block diagram:
# KP = P/128, KI = I/65536, KD = D/16, output in PWM units (885 = 100 %).
_DXL_GAIN_SCALE = (1.0 / 128.0, 1.0 / 65536.0, 1.0 / 16.0)
# Feetech publishes no gain units. Scale fitted to public bench tests of the
# STS3215 at P = 32: 1.8–2.6° error holding 1.47 N·m (half its stall torque),
# i.e. about 20 PWM units (of 1000) per tick.
_FEETECH_GAIN_SCALE = (0.625, 1.0 / 256.0, 0.25)

DXL_VELOCITY_UNIT = 0.229 * 2.0 * math.pi / 60.0  # rad/s per unit
DXL_PROFILE_ACC_UNIT = 214.577 * 2.0 * math.pi / 3600.0  # rad/s² per unit

FAULT_INPUT_VOLTAGE = 1
FAULT_OVERHEAT = 4
FAULT_OVERLOAD = 32
FAULT_ELECTRICAL_SHOCK = 16
# Alarms that cut torque (the X series' default Shutdown byte: overheat, shock, overload).
_SHUTDOWN = FAULT_OVERHEAT | FAULT_ELECTRICAL_SHOCK | FAULT_OVERLOAD

# Present-value areas: Dynamixel X 122..146, Feetech STS 56..70 ('x' = untouched).
_DXL_PRESENT = struct.Struct("<BxhhiixxxxxxxxHB")
_STS_PRESENT = struct.Struct("<HHHBBxBBxxH")


def _clamp(value: int, limit: int) -> int:
    return -limit if value < -limit else (limit if value > limit else value)


def _sign_magnitude(value: int, bit: int) -> int:
    limit = (1 << bit) - 1
    if value < 0:
        return min(-value, limit) | (1 << bit)
    return min(value, limit)


# Operating modes the twin models, by register value.
_DXL_MODES = {3: "position", 4: "extended position", 1: "velocity", 16: "pwm"}
_STS_MODES = {0: "position", 1: "velocity", 2: "pwm"}

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
    """One simulated servo. Angles are output-shaft rad with 0 at tick 2048."""

    # Slots: step() runs for every servo in every physics step, and slot access is cheaper.
    __slots__ = (
        "_centre",
        "_coulomb",
        "_dxl",
        "_full_pwm",
        "_gain_scale",
        "_goal",
        "_goal_range",
        "_goal_reg",
        "_goal_velocity",
        "_half_gap",
        "_heat_acc",
        "_heat_steps",
        "_integral",
        "_kd",
        "_ki",
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
        "external_torque_nm",
        "encoder_noise",
    )

    def __init__(self, spec: ServoSpec, servo_id: int, supply_v: float | None = None) -> None:
        self.spec = spec
        self.table: ControlTable = TABLES[spec.protocol]
        self.supply_v = spec.nominal_voltage_v if supply_v is None else supply_v
        self.regs = bytearray(self.table.size)
        self._dxl = spec.protocol == "dynamixel"
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
        self._heat_acc = 0.0
        self._heat_steps = 0
        self.external_torque_nm = 0.0  # fault injection: a load against the output shaft (N·m)
        self.encoder_noise: Callable[[], float] | None = None  # fault injection: rad added to readings
        self._kt = spec.stall_torque_nm / spec.stall_current_a
        self._ticks_per_rad = spec.resolution_ticks / (2.0 * math.pi)
        self._half_gap = math.radians(spec.backlash_deg) / 2.0
        self._full_pwm = 885.0 if self._dxl else 1000.0
        self._gain_scale = _DXL_GAIN_SCALE if self._dxl else _FEETECH_GAIN_SCALE
        self.temperature_c = _AMBIENT_C
        self.current_a = 0.0
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
        self._goal_reg = self.table["goal_position"]
        # Reads that reach the present-value area refresh it (Hardware Error Status, 70,
        # is the lowest such register on Dynamixel; Present Position, 56, on Feetech).
        self._present_start = 70 if self._dxl else 56
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
        if self._dxl:
            self._set("firmware_version", 52)
            self._set("baud_rate", 1)
            self._set("operating_mode", 3)
            self._set("pwm_limit", s.pwm_limit)
            self._set("max_position_limit", s.resolution_ticks - 1)
            self._set("min_position_limit", 0)
            self._set("status_return_level", 2)
            self._set("max_voltage_limit", int(round(s.max_voltage_v * 10)))  # 0.1 V units
            self._set("min_voltage_limit", int(round(s.min_voltage_v * 10)))
            self._set("velocity_limit", int(s.no_load_speed_rad_s / DXL_VELOCITY_UNIT))
            self._set("velocity_p_gain", 100)  # e-Manual defaults (X series)
            self._set("velocity_i_gain", 1920)
        else:
            self._set("firmware_major", 3)
            self._set("firmware_minor", 10)
            self._set("baud_rate", 0)
            self._set("status_return_level", 1)
            self._set("max_position_limit", s.resolution_ticks - 1)
            self._set("max_torque_limit", s.pwm_limit)
            self._set("torque_limit", s.pwm_limit)
            self._set("max_voltage_limit", int(round(s.max_voltage_v * 10)))  # 0.1 V units
            self._set("min_voltage_limit", int(round(s.min_voltage_v * 10)))
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
        goal = self._goal_reg
        if address == goal.address and len(data) == goal.size:  # the hot path: a new goal
            ticks = goal.decode(data)
            lo, hi = self._goal_range
            if ticks < lo or ticks > hi:
                if self._dxl:  # Dynamixel refuses it (Data Limit Error)
                    raise RegisterError(
                        f"goal position {ticks} is outside the position limits [{lo}, {hi}]", "limit"
                    )
                ticks = lo if ticks < lo else hi  # Feetech clamps to its angle limits
                data = goal.encode(ticks)
            self.regs[address : address + goal.size] = data
            self._goal = (ticks - self._centre) / self._ticks_per_rad
            return
        end = address + len(data)
        if address < 0 or end > self.table.size:
            raise RegisterError(f"write of {len(data)} bytes at {address} is outside the table")
        for reg in self.table.registers:
            if reg.address < end and address < reg.address + reg.size:
                if reg.access == "R":
                    raise RegisterError(f"register {reg.name} ({reg.address}) is read-only", "access")
                if reg.eeprom and self._torque_on:
                    raise RegisterError(f"EEPROM register {reg.name} is locked while torque is on", "access")
        id_reg = self.table["id"]
        if address <= id_reg.address < end:
            new_id = data[id_reg.address - address]
            top = 252 if self._dxl else 253  # 0xFD is reserved on Dynamixel, 0xFE is broadcast on both
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
            modes = _DXL_MODES if self._dxl else _STS_MODES
            if mode not in modes:
                raise RegisterError(
                    f"operating mode {mode} is not modelled by the twin; modelled: "
                    + ", ".join(f"{k} ({v})" for k, v in modes.items()),
                    "limit",
                )
        was_on = self._torque_on
        self.regs[address:end] = data
        self._load_settings()
        if self._torque_on and not was_on:
            self._on_torque_enable()

    def read(self, address: int, length: int) -> bytes:
        """Read raw bytes; present values are encoded from the physics first."""
        if address < 0 or length < 0 or address + length > self.table.size:
            raise RegisterError(f"read of {length} bytes at {address} is outside the table")
        end = address + length
        if end > self._present_start:
            self._refresh_present()
        return bytes(self.regs[address:end])

    def write_register(self, name: str, value: int) -> None:
        """Write one register by name, encoded as the protocol would (RegisterError if refused)."""
        reg = self.table[name]
        self.write(reg.address, reg.encode(value))

    def read_register(self, name: str) -> int:
        """Read one register by name, present values refreshed from the physics."""
        reg = self.table[name]
        return reg.decode(self.read(reg.address, reg.size))

    def peek(self, name: str) -> int:
        """A register's stored value, without refreshing present values (no bus cost)."""
        return self._get(name)

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
        """Clear alarms and torque off, as the vendor's reboot instruction does."""
        self.faults = 0
        self._set("torque_enable", 0)
        self._load_settings()

    def _load_settings(self) -> None:
        g = self._get
        volts = self.supply_v * 10
        if volts < g("min_voltage_limit") or volts > g("max_voltage_limit"):
            self.faults |= FAULT_INPUT_VOLTAGE  # an alarm only: it does not cut torque
        else:
            self.faults &= ~FAULT_INPUT_VOLTAGE
        self._torque_on = bool(g("torque_enable")) and not self.faults & _SHUTDOWN
        if not self._torque_on and g("torque_enable"):
            self._set("torque_enable", 0)
        kp, ki, kd = self._gain_scale
        self._kp = g("position_p_gain") * kp
        self._ki = g("position_i_gain") * ki
        self._kd = g("position_d_gain") * kd
        self._goal = (g("goal_position") - self._centre) / self._ticks_per_rad
        self._temp_limit = float(g("temperature_limit"))
        self.return_delay_s = g("return_delay_time") * 2e-6
        self._mode = (_DXL_MODES if self._dxl else _STS_MODES)[g("operating_mode")]
        self._pwm_mode = self._mode == "pwm"
        self._velocity_mode = self._mode == "velocity"
        lo, hi = g("min_position_limit"), g("max_position_limit")
        self._goal_range = (lo, hi) if self._mode == "position" and hi > lo else (-(2**31), 2**31 - 1)
        if self._dxl:
            self._open_pwm = g("goal_pwm") / self._full_pwm
            self._goal_velocity = g("goal_velocity") * DXL_VELOCITY_UNIT
            self._kv_p = g("velocity_p_gain") / 128.0 * DXL_VELOCITY_UNIT**-1
            self._kv_i = g("velocity_i_gain") / 65536.0 * DXL_VELOCITY_UNIT**-1
            self._pwm_cap = min(g("pwm_limit"), 885) / self._full_pwm
            vel = g("profile_velocity") * DXL_VELOCITY_UNIT
            acc = g("profile_acceleration") * DXL_PROFILE_ACC_UNIT
        else:
            self._goal_velocity = g("goal_speed") / self._ticks_per_rad
            # Feetech publishes no speed-loop gains: a PI loop that settles in ~0.1 s.
            self._kv_p = 0.3 * self._full_pwm / self._w0
            self._kv_i = 0.01 * self._full_pwm / self._w0
            pwm_reg = self.table["goal_time"]
            raw = int.from_bytes(self.regs[pwm_reg.address : pwm_reg.address + 2], "little")
            self._open_pwm = (-(raw & 0x3FF) if raw & 0x400 else (raw & 0x3FF)) / self._full_pwm
            self._pwm_cap = min(g("torque_limit"), 1000) / self._full_pwm
            vel = abs(g("goal_speed")) / self._ticks_per_rad
            acc = g("acceleration") * 100.0 / self._ticks_per_rad
        self._profile_v = vel if vel > 0 else math.inf
        self._profile_a = acc if acc > 0 else math.inf
        self._profiled = vel > 0 or acc > 0
        self._pid_full = self._ki != 0.0 or self._kd != 0.0

    def _on_torque_enable(self) -> None:
        # The firmware starts holding where the shaft is (goal := present), not
        # where it was told before torque went off: no jump on enable.
        ticks = int(math.floor(self.position * self._ticks_per_rad + 0.5))
        self._set("goal_position", ticks + self.spec.resolution_ticks // 2)
        self._goal = ticks / self._ticks_per_rad
        self._setpoint = self.position
        self._sp_velocity = 0.0
        self._integral = 0.0
        self._prev_error = 0.0

    def _refresh_present(self) -> None:
        """Encode the present values (position, speed, load, ...) from the physics state.

        One struct pack per read: reads happen for every servo in every bus
        cycle, so this is on the hot path of a run.
        """
        position = self.position if self.encoder_noise is None else self.position + self.encoder_noise()
        ticks = int(math.floor(position * self._ticks_per_rad + 0.5)) + self._centre
        moving = 1 if abs(self.velocity) > 0.02 else 0
        temperature = min(255, max(0, int(round(self.temperature_c))))
        volts = min(65535 if self._dxl else 255, int(round(self.supply_v * 10)))
        if self._dxl:
            _DXL_PRESENT.pack_into(
                self.regs,
                122,
                moving,
                _clamp(int(round(self.pwm * self._full_pwm)), 32767),
                _clamp(self._dxl_current_units(), 32767),
                _clamp(int(round(self.velocity / DXL_VELOCITY_UNIT)), 2**31 - 1),
                _clamp(ticks, 2**31 - 1),
                volts,
                temperature,
            )
            self.regs[120:122] = (int(self.time_s * 1000) % 32768).to_bytes(2, "little")
            self.regs[70] = self.faults
        else:
            _STS_PRESENT.pack_into(
                self.regs,
                56,
                _sign_magnitude(ticks, 15),
                _sign_magnitude(int(round(self.velocity * self._ticks_per_rad)), 15),
                _sign_magnitude(int(round(1000.0 * self.pwm)), 10),
                volts,
                temperature,
                self._vendor_faults(),
                moving,
                _sign_magnitude(int(round(self.current_a / 0.0065)), 15),
            )

    def _dxl_current_units(self) -> int:
        name = self.spec.name
        if name.startswith("xl430"):
            return int(round(1000.0 * self.pwm))  # Present Load, 0.1 % units
        unit_a = 0.00269 if name.startswith("xm") else 0.001
        return int(round(math.copysign(self.current_a, self.pwm) / unit_a))

    def _vendor_faults(self) -> int:
        if self._dxl:
            return self.faults
        out = 0
        if self.faults & FAULT_INPUT_VOLTAGE:
            out |= 1
        if self.faults & FAULT_OVERHEAT:
            out |= 4
        if self.faults & FAULT_OVERLOAD:
            out |= 32
        return out

    # -- physics ----------------------------------------------------------
    def step(self, position: float, velocity: float, dt: float) -> float:
        """Advance firmware and motor by dt; return the output torque (N·m).

        This runs once per servo per physics step: it is written flat, with
        locals, because attribute lookups and calls dominate its cost.
        """
        self.position = position
        self.velocity = velocity
        self.time_s += dt
        if self._torque_on:
            if self._pwm_mode:
                u = self._open_pwm
            elif self._velocity_mode:
                u = self._velocity_control()
            else:
                if self._profiled:
                    self._advance_setpoint(dt)
                else:
                    self._setpoint = self._goal
                error = (self._setpoint - position) * self._ticks_per_rad
                error = float(int(error + 0.5) if error >= 0.0 else -int(0.5 - error))  # encoder ticks
                u = self._kp * error
                if self._pid_full:
                    self._integral += error
                    u += self._ki * self._integral + self._kd * (error - self._prev_error)
                    self._prev_error = error
                u /= self._full_pwm
            cap = self._pwm_cap
            u = cap if u > cap else (-cap if u < -cap else u)
            tau_m = self._kv_supply * u - self._kw * velocity
            tmax = self._tau_max
            tau_m = tmax if tau_m > tmax else (-tmax if tau_m < -tmax else tau_m)
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
            u = tau_m = tau = 0.0
        self.pwm = u
        s = velocity * _INV_SMOOTH
        s = 1.0 if s > 1.0 else (-1.0 if s < -1.0 else s)
        tau -= self._coulomb * s + self._viscous * velocity + self.external_torque_nm
        self._heat_acc += tau_m * tau_m
        self._heat_steps += 1
        if self._heat_steps >= _HEAT_EVERY:
            self._heat(dt)
        return tau

    def _velocity_control(self) -> float:
        """Velocity PI (Dynamixel mode 1, Feetech wheel mode), per control tick."""
        error = self._goal_velocity - self.velocity
        self._integral += error
        return (self._kv_p * error + self._kv_i * self._integral) / self._full_pwm

    def _advance_setpoint(self, dt: float) -> None:
        """Trapezoidal profile towards the goal (profile velocity/acceleration)."""
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
            self._torque_on = False
            self._set("torque_enable", 0)
