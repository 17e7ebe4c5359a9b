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
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import simpy

from hw_adapters import SHUTDOWN_FAULTS, BusError, PortLostError, ServoBus, ServoFailedError
from twin.control.joints import Joint
from twin.control.limits import clip_to_limits
from twin.control.trajectory import Anchored, Move, SineSweep
from twin.services.base import Instance, Message, Service
from twin.services.commands import Alarm, JointStates, Setpoints


@dataclass
class DriverStats:
    cycles: int = 0
    deadline_misses: int = 0  # cycles that overran their period
    skipped_periods: int = 0  # period boundaries those overruns skipped
    clipped_goals: int = 0
    bus_errors: int = 0
    cycle_work_s: list[float] = field(default_factory=list)
    command_latency_s: list[float] = field(default_factory=list)
    max_temperature_c: dict[int, float] = field(default_factory=dict)
    faults: dict[int, int] = field(default_factory=dict)
    failed_servos: set[int] = field(default_factory=set)
    blocked: int = 0  # cycles held back by a full `block` subscriber


@dataclass
class Driver(Service):
    joints: Sequence[Joint] = ()
    servo_bus: ServoBus | None = None
    period_s: float = 0.01
    blend_s: float = 0.25
    events: Any = None  # the EventBus the joint states go out on
    estop_subscription: Any = None
    failure_policy: str = "safe_stop"  # or "hold_others", "torque_off": see the scenario's plant.bus
    halted: str = ""  # the policy that stopped the machine, once one did
    lost: str = ""  # why the bus went away, when it did
    stats: DriverStats = field(default_factory=DriverStats)
    setpoint: list[float] = field(default_factory=list)
    _pending: tuple[Move | SineSweep, float] | None = None
    _active: Anchored | None = None

    def start(self) -> None:
        super().start()
        inst = self.replicas[0]
        self._inst = inst
        inst.env.process(self._loop(inst))
        if self.estop_subscription is not None:
            inst.env.process(self._watch_estop(inst))

    def _watch_estop(self, inst: Instance) -> Generator[simpy.Event, Any, None]:
        """An e-stop on the event bus: stop all motion at once and refuse further commands."""
        while True:
            event = yield self.estop_subscription.get()
            self.estop_subscription.ack(event)
            if not self.halted:
                self._pending = None
                self._active = None
                self.halted = "estop"

    def _alarm(self, servo_id: int, what: str) -> None:
        if self.events is not None:
            inst = self._inst
            self.events.publish("alarms", inst.name, inst.node, Alarm(inst.env.now, servo_id, what))

    def handle(self, inst: Instance, message: Message) -> None:
        if message.kind == "setpoint":
            self.bus.reply(inst, message, body=Setpoints(tuple(self.setpoint), tuple(self._target())))
            return None
        if message.kind != "trajectory":
            self.bus.reply(inst, message, error=f"driver: unknown request {message.kind!r}")
            return None
        if self.halted:
            failed = sorted(self.stats.failed_servos)
            self.bus.reply(
                inst, message, error=f"driver: halted ({self.halted}) after servo(s) {failed} failed"
            )
            return None
        self._pending = (message.body, message.issued_at)
        self.bus.reply(inst, message, body="accepted")
        return None

    def _loop(self, inst: Instance) -> Generator[simpy.Event, Any, None]:
        env, bus = inst.env, self.servo_bus
        assert bus is not None
        ids = [j.servo_id for j in self.joints]
        cal = [j.calibration for j in self.joints]
        limits = [j.limits for j in self.joints]
        stats = self.stats
        live = list(range(len(ids)))  # the joints whose servos still answer
        states = None
        while states is None:  # start only from where the servos really are
            try:
                states = bus.read_states([ids[k] for k in live])
            except ServoFailedError as exc:
                live = self._servos_failed(exc.servo_ids, live, ids)
            except BusError:
                stats.bus_errors += 1
            yield env.timeout(bus.last_duration_s + (0.0 if states else self.period_s))
        actual = [0.0] * len(ids)
        for k in live:
            actual[k] = cal[k].to_joint(states[ids[k]].position)
        self.setpoint = list(actual)
        try:
            bus.set_torque([ids[k] for k in live], True)
        except BusError:
            stats.bus_errors += 1  # the first writes will tell which servos are missing
        yield env.timeout(bus.last_duration_s)
        next_t = env.now
        period = self.period_s
        while self.halted != "torque_off":
            start = env.now
            try:
                states = bus.read_states([ids[k] for k in live])
            except ServoFailedError as exc:
                live = self._servos_failed(exc.servo_ids, live, ids)
                states = None
            except PortLostError as exc:
                self.halted, self.lost = "port lost", str(exc)
                return
            except BusError:
                stats.bus_errors += 1
                states = None
            yield env.timeout(bus.last_duration_s)
            writing_s = 0.0
            if states is not None:
                for k in live:
                    actual[k] = cal[k].to_joint(states[ids[k]].position)
                self._watch_servos(states)
                shut_down = [i for i, st in states.items() if st.faults & SHUTDOWN_FAULTS]
                if shut_down:  # the servo's own firmware cut its torque: it is lost to us too
                    live = self._servos_failed(shut_down, live, ids)
                goals, clipped = clip_to_limits(self._next_setpoint(env.now), limits)
                stats.clipped_goals += clipped
                try:
                    bus.write_goals({ids[k]: cal[k].to_servo(goals[k]) for k in live})
                except ServoFailedError as exc:
                    live = self._servos_failed(exc.servo_ids, live, ids)
                except PortLostError as exc:
                    self.halted, self.lost = "port lost", str(exc)
                    return
                except BusError:
                    stats.bus_errors += 1
                else:
                    self.setpoint = goals
                writing_s = bus.last_duration_s
                # Published as the write goes out; the write's wire time is then
                # waited for together with the rest of the period (one event, not two).
                published = self.events.publish(
                    "joint_states", inst.name, inst.node, JointStates(start, tuple(goals), tuple(actual))
                )
                if not published.triggered:  # a `block` subscriber is full: backpressure
                    stats.blocked += 1
                    yield published
            stats.cycles += 1
            done = env.now + writing_s
            stats.cycle_work_s.append(done - start)
            next_t += period
            if done > next_t + 1e-12:
                skipped = int((done - next_t) // period) + 1
                stats.deadline_misses += 1
                stats.skipped_periods += skipped
                next_t += skipped * period
            yield env.timeout(next_t - env.now)

    def _servos_failed(self, failed: list[int], live: list[int], ids: list[int]) -> list[int]:
        """React to servos the bus gave up on, as the scenario says; return the joints still live."""
        for i in failed:
            if i not in self.stats.failed_servos:
                self._alarm(i, "failed")
        self.stats.failed_servos.update(failed)
        live = [k for k in live if ids[k] not in self.stats.failed_servos]
        if self.failure_policy == "hold_others":
            return live
        # safe_stop and torque_off: no more motion for anyone.
        self._pending = None
        self._active = None
        self.halted = self.failure_policy
        if self.failure_policy == "torque_off" and live:
            assert self.servo_bus is not None
            with contextlib.suppress(BusError):
                self.servo_bus.set_torque([ids[k] for k in live], False)
        return live

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
            self.stats.command_latency_s.append(now - issued_at)
        if self._active is None:
            return list(self.setpoint)
        return self._active.sample(now)

    def _watch_servos(self, states: dict) -> None:
        temps, faults = self.stats.max_temperature_c, self.stats.faults
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
