"""Fault injection on the one clock: each fault acts through a method of the object that owns
the state (a replica, a link, a servo, the bus wrapper, the registry) and gets an undo back.

The assembly turns the scenario's `faults:` timeline into the objects below (SI units);
a fault is a start time, a duration (None: to the end) and an action. `schedule_faults`
starts one process per fault. Random draws come from generators derived from the seed and
the fault's position, so runs stay reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import simpy

from hw_adapters.faulty import FaultInjectingBus
from sim_models.network import Link
from sim_models.servo.device import VirtualServo
from twin.patterns.discovery_service import Discovery
from twin.services.replica import Replica

__all__ = ["FaultTargets", "TimedFault", "Undo", "schedule_faults"]

Undo = Callable[[], None]


class FaultTargets(Protocol):
    """What faults act on; the Machine provides it."""

    env: simpy.Environment

    def replicas(self, service: str, replica: int | None = None) -> list[Replica]: ...
    def link(self, a: str, b: str) -> Link: ...
    def servo(self, servo_id: int) -> VirtualServo: ...
    def faulty_bus(self) -> FaultInjectingBus: ...
    def discovery(self) -> Discovery: ...
    def press_estop(self) -> None: ...
    def catch_up(self) -> None: ...  # bring the plant up to the clock
    def fault_injected(self) -> None: ...
    def update_completed(self) -> None: ...


Action = Callable[[FaultTargets], Undo | None]


@dataclass(frozen=True)
class TimedFault:
    at_s: float
    duration_s: float | None
    action: Action | None = None  # None for an operation with its own process (rolling update)
    process: Callable[[FaultTargets], Generator[simpy.Event, Any, None]] | None = None


def _all(undos: list[Undo]) -> Undo:
    def undo() -> None:
        for u in undos:
            u()

    return undo


def crash(service: str, replica: int | None) -> Action:
    return lambda t: _all([r.crash() for r in t.replicas(service, replica)])


def hang(service: str, replica: int | None) -> Action:
    return lambda t: _all([r.hang() for r in t.replicas(service, replica)])


def slow_down(service: str, replica: int | None, factor: float) -> Action:
    return lambda t: _all([r.slow_down(factor) for r in t.replicas(service, replica)])


def partition(a: str, b: str) -> Action:
    return lambda t: t.link(a, b).partition()


def link_loss(a: str, b: str, loss: float) -> Action:
    return lambda t: t.link(a, b).set_loss(loss)


def link_latency(a: str, b: str, extra_s: float) -> Action:
    return lambda t: t.link(a, b).add_latency(extra_s)


def overload(servo_id: int, torque_nm: float) -> Action:
    return lambda t: t.servo(servo_id).add_external_torque(torque_nm)


def overheat(servo_id: int) -> Action:
    def act(t: FaultTargets) -> None:
        t.servo(servo_id).force_overheat()  # latched, as on a real servo: only a reboot clears it

    return act


def encoder_noise(servo_id: int, std_rad: float, rng: np.random.Generator) -> Action:
    return lambda t: t.servo(servo_id).set_encoder_noise(lambda: float(rng.normal(0.0, std_rad)))


def disconnect(servo_id: int) -> Action:
    return lambda t: t.faulty_bus().disconnect(servo_id)


def bus_errors(rate: float, rng: np.random.Generator) -> Action:
    return lambda t: t.faulty_bus().inject_errors(rate, rng)


def registry_outage() -> Action:
    return lambda t: t.discovery().outage()


def estop() -> Action:
    def act(t: FaultTargets) -> None:
        t.press_estop()

    return act


def rolling_update(
    service: str, drain_timeout_s: float, startup_s: float
) -> Callable[[FaultTargets], Generator[simpy.Event, Any, None]]:
    """Replace each replica in turn: out of the registry, drained, stopped, restarted, healthy again.

    Callers stop routing to a replica once their cached view refreshes after its
    deregistration, so the drain waits at least one refresh interval, then until the replica
    holds no work.
    """

    def run(t: FaultTargets) -> Generator[simpy.Event, Any, None]:
        env, discovery = t.env, t.discovery()
        settings = discovery.settings
        for replica in t.replicas(service):
            back = replica.take_out()  # no more heartbeats: nothing re-registers it meanwhile
            discovery.registry.deregister(replica.name)
            yield env.timeout(settings.refresh_s + settings.heartbeat_s)
            deadline = env.now + drain_timeout_s
            while not replica.idle and env.now < deadline:
                yield env.timeout(0.01)
            restart = replica.stop()  # anything that still reaches the old version is lost
            yield env.timeout(startup_s)
            restart()  # the new version is up (unless a crash fault still holds it down)
            back()
            discovery.registry.register(replica.name, replica.service, replica.node)
            yield env.timeout(settings.refresh_s)  # until callers' views have it again
        t.update_completed()

    return run


def schedule_faults(targets: FaultTargets, faults: list[TimedFault]) -> None:
    for fault in faults:
        targets.env.process(_run(targets, fault))


def _run(t: FaultTargets, fault: TimedFault) -> Generator[simpy.Event, Any, None]:
    yield t.env.timeout(fault.at_s)
    if fault.process is not None:
        t.fault_injected()
        yield from fault.process(t)
        return
    assert fault.action is not None
    t.catch_up()
    undo = fault.action(t)
    t.fault_injected()
    if fault.duration_s is None or undo is None:
        return
    yield t.env.timeout(fault.duration_s)
    t.catch_up()
    undo()
