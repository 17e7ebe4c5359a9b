"""The driver: a fixed-rate loop that owns the servo bus.

Each cycle: one sync read of every servo, the active trajectory sampled at
the cycle's time, goals clipped to the joint limits and written in one sync
write, then the joint states published. Bus transactions take their wire
time (or, on a real port, their wall time). A cycle that overruns its period
counts as a deadline miss and the loop skips to the next period boundary
rather than running late forever.

A bus error in one cycle costs that cycle, not the run. A servo the bus has
given up on (ServoFailedError), or whose firmware shut it down (overheat,
overload, electrical shock), triggers the scenario's policy: `safe_stop`
(default: stop all motion, the other servos hold where they are, further
commands are refused), `hold_others` (go on without it) or `torque_off`
(torque off everywhere and stop the loop). A port that goes away ends the
loop: the run reports it as an error.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Generator
from typing import Any, Literal

import simpy
from pydantic import Field

from hw_adapters import SHUTDOWN_FAULTS, BusError, PortLostError, ServoFailedError, ServoState
from twin.clock import WallClockEnvironment
from twin.control.commands import Alarm, EStop, JointStates, Setpoints
from twin.control.limits import clip_to_limits
from twin.control.trajectory import Anchored, Move, SineSweep
from twin.patterns.eventbus import Event
from twin.services.api import (
    Counter,
    Gauge,
    Histogram,
    Message,
    Service,
    ServiceError,
    ServiceParams,
    handles,
)

__all__ = ["Driver", "DriverParams"]


class DriverParams(ServiceParams):
    rate_hz: float = Field(default=100.0, gt=0, le=2000)
    blend_ms: float = Field(default=250.0, ge=0, description="a new trajectory blends in over this long")
    bus_watchdog_ms: float | None = Field(
        default=500.0,
        ge=20,
        le=2540,
        description="arm the servos' own bus watchdog (Dynamixel X): they stop by themselves when the "
        "host goes silent this long (process killed, PC off); null: leave it off",
    )
    trajectory_timeout_ms: float | None = Field(
        default=None,
        gt=0,
        description="software watchdog: when no fresh trajectory arrives within this long, "
        "act as on_trajectory_timeout says; null: off",
    )
    on_trajectory_timeout: Literal["hold", "torque_off"] = Field(
        default="hold", description="hold: stop where the setpoint is; torque_off: torque off and halt"
    )


class Driver(Service[DriverParams]):
    Params = DriverParams
    wants_servo_bus = True
    description = "a fixed-rate loop: read every servo, follow the trajectory, write the goals"
    period_ms = Gauge("the control period")
    cycles = Counter("control cycles run")
    deadline_misses = Counter("cycles that overran their period")
    skipped_periods = Counter("period boundaries those overruns skipped")
    clipped_goals = Counter("goals clipped to the joint limits")
    bus_errors = Counter("bus transactions that failed")
    failed_servos = Gauge("servos the bus gave up on or whose firmware shut down")
    halted_gauge = Gauge("1 once a failure policy or an e-stop stopped the machine", name="halted")
    blocked = Counter("cycles held back by a full `block` subscriber")
    watchdog_trips = Counter("times no fresh trajectory came within trajectory_timeout_ms")
    bus_watchdog_armed = Gauge("1 when the servos' own bus watchdog is armed")
    cycle_work = Histogram("time a cycle's reads and writes took")
    command_latency = Histogram(
        "from the operator's command to the cycle that first writes its trajectory (period-quantised)"
    )

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.joints = list(ctx.machine.joints)
        self.period_s = 1.0 / self.params.rate_hz
        self.blend_s = self.params.blend_ms / 1000.0
        self.failure_policy: str = ctx.machine.on_servo_failure
        self.halted = ""  # the policy that stopped the machine, once one did
        self.lost = ""  # why the bus went away, when it did
        self.setpoint: list[float] = []
        self.failed_servos_ids: set[int] = set()
        self.max_temperature_c: dict[int, float] = {}
        self.servo_faults: dict[int, int] = {}
        self._pending: tuple[Move | SineSweep, float] | None = None
        self._active: Anchored | None = None
        self.loop: simpy.Process | None = None  # the control loop, once started
        self._last_trajectory_t = 0.0
        self._timeout_s = (
            None if self.params.trajectory_timeout_ms is None else self.params.trajectory_timeout_ms / 1000.0
        )
        self.period_ms.set(self.period_s * 1000.0)

    def start(self) -> None:
        self.loop = self.ctx.spawn(self._loop())
        self.ctx.subscribe("estop", self._estop)

    def _estop(self, event: Event) -> None:
        """An e-stop on the event bus: stop all motion at once and refuse further commands."""
        if isinstance(event.payload, EStop) and not self.halted:
            self._pending = None
            self._active = None
            self.halted = "estop"
            self._sync_gauges()

    def _alarm(self, servo_id: int, what: str) -> None:
        self.ctx.publish("alarms", Alarm(self.ctx.now, servo_id, what))

    @handles("setpoint")
    def setpoint_query(self, request: Message) -> Setpoints:
        return Setpoints(tuple(self.setpoint), tuple(self._target()))

    @handles("trajectory", Move | SineSweep)
    def trajectory(self, request: Message) -> str:
        if self.halted:
            failed = sorted(self.failed_servos_ids)
            raise ServiceError(f"halted ({self.halted}) after servo(s) {failed} failed")
        self._pending = (request.body, request.issued_at)
        self._last_trajectory_t = self.ctx.now
        return "accepted"

    def _loop(self) -> Generator[simpy.Event, Any, None]:
        env, bus = self.ctx.env, self.ctx.servo_bus
        ids = [j.servo_id for j in self.joints]
        cal = [j.calibration for j in self.joints]
        limits = [j.limits for j in self.joints]
        live = list(range(len(ids)))  # the joints whose servos still answer
        states = None
        while states is None:  # start only from where the servos really are
            try:
                states = bus.read_states([ids[k] for k in live])
            except ServoFailedError as exc:
                live = self._servos_failed(exc.servo_ids, live, ids)
            except PortLostError as exc:
                self._port_lost(exc)
                return
            except BusError:
                self.bus_errors.inc()
            yield env.timeout(bus.last_duration_s + (0.0 if states else self.period_s))
        actual = [math.nan] * len(ids)  # a joint whose servo failed has no reading
        for k in live:
            actual[k] = cal[k].to_joint(states[ids[k]].position)
        self.setpoint = [0.0 if math.isnan(a) else a for a in actual]
        try:
            bus.set_torque([ids[k] for k in live], True)
        except PortLostError as exc:
            self._port_lost(exc)
            return
        except BusError:
            self.bus_errors.inc()  # the first writes will tell which servos are missing
        yield env.timeout(bus.last_duration_s)
        if self.params.bus_watchdog_ms is not None:
            try:  # a servo left fired by an earlier run refuses to be armed until cleared
                bus.disarm_watchdog([ids[k] for k in live])
                armed = bus.arm_watchdog([ids[k] for k in live], self.params.bus_watchdog_ms / 1000.0)
            except PortLostError as exc:
                self._port_lost(exc)
                return
            except BusError:
                self.bus_errors.inc()
                armed = False
            self.bus_watchdog_armed.set(1 if armed else 0)
            yield env.timeout(bus.last_duration_s if armed else 0.0)
        wall = env if isinstance(env, WallClockEnvironment) else None
        next_t = env.now
        period = self.period_s
        self._last_trajectory_t = env.now
        torque_resent = env.now
        # The metrics, bound once: each attribute access goes through a descriptor.
        cycles, cycle_work, clipped_goals = self.cycles, self.cycle_work, self.clipped_goals
        n_joints = len(ids)
        while True:
            start = env.now
            stamp = wall.real_now() if wall is not None else start  # on the wall clock: when it ran
            self._check_trajectory_timeout(start)
            if self._limp and start - torque_resent >= 1.0:
                # A servo that failed and answers again must not come back energised.
                torque_resent = start
                with contextlib.suppress(BusError):
                    bus.set_torque(ids, False)
                yield env.timeout(bus.last_duration_s)
            try:
                states = bus.read_states([ids[k] for k in live])
            except ServoFailedError as exc:
                live = self._servos_failed(exc.servo_ids, live, ids)
                states = None
            except PortLostError as exc:
                self._port_lost(exc)
                return
            except BusError:
                self.bus_errors.inc()
                states = None
            yield env.timeout(bus.last_duration_s)
            writing_s = 0.0
            if states is not None:
                if len(live) == n_joints:
                    for k in range(n_joints):
                        actual[k] = cal[k].to_joint(states[ids[k]].position)
                else:
                    live_now = set(live)
                    for k in range(n_joints):
                        actual[k] = cal[k].to_joint(states[ids[k]].position) if k in live_now else math.nan
                self._watch_servos(states)
                shut_down = [i for i, st in states.items() if st.faults and st.faults & SHUTDOWN_FAULTS]
                if shut_down:  # the servo's own firmware cut its torque: it is lost to us too
                    live = self._servos_failed(shut_down, live, ids)
                goals, clipped = clip_to_limits(self._next_setpoint(env.now), limits)
                clipped_goals.inc(clipped)
                try:
                    if not self._limp:  # torque is off: only watch (telemetry goes on)
                        bus.write_goals({ids[k]: cal[k].to_servo(goals[k]) for k in live})
                except ServoFailedError as exc:
                    live = self._servos_failed(exc.servo_ids, live, ids)
                except PortLostError as exc:
                    self._port_lost(exc)
                    return
                except BusError:
                    self.bus_errors.inc()
                else:
                    self.setpoint = goals
                writing_s = 0.0 if self._limp else bus.last_duration_s
                # Published as the write goes out; the write's wire time is then
                # waited for together with the rest of the period (one event, not two).
                published = self.ctx.publish("joint_states", JointStates(stamp, tuple(goals), tuple(actual)))
                if not published.triggered:  # a `block` subscriber is full: backpressure
                    self.blocked.inc()
                    yield published
            cycles.inc()
            done = env.now + writing_s
            cycle_work.observe(done - start)
            next_t += period
            if done > next_t + 1e-12:
                skipped = int((done - next_t) // period) + 1
                self.deadline_misses.inc()
                self.skipped_periods.inc(skipped)
                next_t += skipped * period
            yield env.timeout(next_t - env.now)

    def _servos_failed(self, failed: list[int], live: list[int], ids: list[int]) -> list[int]:
        """React to servos the bus gave up on, as the scenario says; return the joints still live."""
        for i in failed:
            if i not in self.failed_servos_ids:
                self._alarm(i, "failed")
        self.failed_servos_ids.update(failed)
        self._sync_gauges()
        live = [k for k in live if ids[k] not in self.failed_servos_ids]
        if self.failure_policy == "hold_others":
            return live
        # safe_stop and torque_off: no more motion for anyone.
        self._pending = None
        self._active = None
        self.halted = self.failure_policy
        self._sync_gauges()
        if self.failure_policy == "torque_off":
            self._torque_off(ids)
        return live

    def _port_lost(self, exc: Exception) -> None:
        self.halted, self.lost = "port lost", str(exc)
        self._sync_gauges()

    @property
    def _limp(self) -> bool:
        """Torque was turned off by a policy: the loop only watches from then on."""
        return self.halted in ("torque_off", "watchdog")

    def _torque_off(self, ids: list[int]) -> None:
        """Torque off on every servo, the failed ones too: one that answers again stays limp."""
        with contextlib.suppress(BusError):
            self.ctx.servo_bus.set_torque(ids, False)
        self.ctx.machine.recording.event(self.ctx.now, "halt", policy=self.halted, servos=list(ids))

    def _check_trajectory_timeout(self, now: float) -> None:
        if self._timeout_s is None or self.halted or now - self._last_trajectory_t <= self._timeout_s:
            return
        if self._active is None and self._pending is None:
            self._last_trajectory_t = now  # nothing moving: nothing to stop
            return
        self.watchdog_trips.inc()
        self._pending = None
        self._active = None  # hold: the setpoint stays where the last cycle put it
        self._last_trajectory_t = now
        self.ctx.machine.recording.event(now, "trajectory_timeout", action=self.params.on_trajectory_timeout)
        if self.params.on_trajectory_timeout == "torque_off":
            self.halted = "watchdog"
            self._sync_gauges()
            self._torque_off([j.servo_id for j in self.joints])

    def _target(self) -> list[float]:
        """Where the machine is headed: the end of the pending or the active trajectory."""
        if self._pending is not None:
            trajectory = self._pending[0]
            return trajectory.sample(trajectory.duration_s)
        if self._active is not None:
            return self._active.sample(self._active.end_s)
        return list(self.setpoint)

    def _next_setpoint(self, now: float) -> list[float]:
        if self._pending is not None:
            trajectory, issued_at = self._pending
            self._pending = None
            blend = min(self.blend_s, trajectory.duration_s)
            self._active = Anchored(trajectory, now, self.setpoint, blend)
            self.command_latency.observe(now - issued_at)
        if self._active is None:
            return list(self.setpoint)
        return self._active.sample(now)

    def _watch_servos(self, states: dict[int, ServoState]) -> None:
        temps, faults = self.max_temperature_c, self.servo_faults
        for i, s in states.items():
            if s.temperature > temps.get(i, -273.0):
                temps[i] = s.temperature
            if s.faults:
                known = faults.get(i, 0)
                new = int(s.faults) & ~known
                if new:
                    faults[i] = known | new
                    for fault in type(s.faults)(new):
                        self._alarm(i, (fault.name or "fault").lower())

    def _sync_gauges(self) -> None:
        self.failed_servos.set(len(self.failed_servos_ids))
        self.halted_gauge.set(1 if self.halted else 0)
