"""Fault injection: the scenario's `faults:` timeline, applied on the one clock.

Each fault is a SimPy process: at `at_s` it breaks something (a service
replica, a link, a servo, the bus) and after `duration_s` it puts it back.
Faults that touch the plant bring it up to the environment's time first.
Random draws (encoder noise, bus errors) come from generators derived from the
seed and the fault's position in the timeline, so runs stay reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import Any

import simpy

from sim_models.errors import ConfigError
from sim_models.rng import component_rng
from twin.runtime import Machine
from twin.scenario.models import (
    BusErrors,
    EmergencyStop,
    EncoderNoise,
    Fault,
    LinkFault,
    LinkLatency,
    LinkLoss,
    LinkPartition,
    RegistryOutage,
    RollingUpdate,
    ServiceCrash,
    ServiceFault,
    ServiceHang,
    ServiceSlowdown,
    ServoDisconnect,
    ServoFaultBase,
    ServoOverheat,
    ServoOverload,
)

Undo = Callable[[], None]


def schedule_faults(machine: Machine) -> None:
    """Start one process per fault of the scenario. ConfigError for faults of the twin's
    servos or bus when the servos are real (a bus URL was given)."""
    for index, fault in enumerate(machine.scenario.faults):
        if machine.plant is None and isinstance(fault, ServoFaultBase | BusErrors):
            raise ConfigError(
                f"faults.{index}: a {fault.type} fault acts on the twin's servos; with --bus the servos "
                "are real (service and link faults still apply)"
            )
        machine.env.process(_run(machine, index, fault))


def _run(machine: Machine, index: int, fault: Fault) -> Generator[simpy.Event, Any, None]:
    env = machine.env
    yield env.timeout(fault.at_s)
    if isinstance(fault, RollingUpdate):
        machine.faults_injected += 1
        yield from _rolling_update(machine, fault)
        return
    if machine.plant is not None:
        machine.plant.advance_to(env.now)
    undo = _apply(machine, index, fault)
    machine.faults_injected += 1
    if fault.duration_s is None or undo is None:
        return
    yield env.timeout(fault.duration_s)
    if machine.plant is not None:
        machine.plant.advance_to(env.now)
    undo()


def _apply(machine: Machine, index: int, fault: Fault) -> Undo | None:
    if isinstance(fault, ServiceFault):
        return _service(machine, fault)
    if isinstance(fault, LinkFault):
        return _link(machine, fault)
    if isinstance(fault, ServoFaultBase):
        return _servo(machine, index, fault)
    if isinstance(fault, EmergencyStop):
        machine.operator.press_estop()
        return None
    if isinstance(fault, RegistryOutage):
        registry = machine.bus.discovery.registry  # type: ignore[union-attr]  (checked: discovery is on)
        registry.available = False

        def recover() -> None:
            registry.available = True

        return recover
    if isinstance(fault, BusErrors):
        bus = machine.driver.servo_bus
        bus.error_rate = fault.rate  # type: ignore[union-attr]
        bus.error_rng = component_rng(machine.seed, f"fault:{index}:bus_errors")  # type: ignore[union-attr]

        def restore() -> None:
            bus.error_rate = 0.0  # type: ignore[union-attr]

        return restore
    raise TypeError(fault)


def _rolling_update(machine: Machine, update: RollingUpdate) -> Generator[simpy.Event, Any, None]:
    """Replace each replica in turn: out of the registry, drained, stopped, restarted, healthy again.

    Callers stop routing to a replica once their cached view refreshes after its deregistration,
    so the drain waits at least one refresh interval, then until the replica holds no work.
    """
    env = machine.env
    discovery = machine.bus.discovery
    assert discovery is not None  # the scenario checks: a rolling update needs discovery
    registry = discovery.registry
    refresh_s = discovery.config.refresh_ms / 1000.0
    for inst in [i for i in machine.instances if i.service == update.service]:
        inst.stopped = True  # no more heartbeats: nothing re-registers it meanwhile
        registry.deregister(inst.name)
        yield env.timeout(refresh_s + discovery.config.heartbeat_ms / 1000.0)
        deadline = env.now + update.drain_timeout_ms / 1000.0
        while (inst.in_flight or inst.inbox.items) and env.now < deadline:
            yield env.timeout(0.01)
        inst.down += 1  # the old version stops; anything that still reaches it is lost
        yield env.timeout(update.startup_ms / 1000.0)
        inst.down -= 1  # the new version is up (unless a crash fault still holds it down)
        inst.stopped = False
        registry.register(inst.name, inst.service, inst.node)
        yield env.timeout(refresh_s)  # until callers' views have it again
    machine.updates_completed += 1


def _service(machine: Machine, fault: ServiceFault) -> Undo:
    replicas = [i for i in machine.instances if i.service == fault.service]
    if fault.replica is not None:
        replicas = [i for i in replicas if i.name == f"{fault.service}#{fault.replica}"]
    env = machine.env
    if isinstance(fault, ServiceCrash):
        for inst in replicas:
            inst.down += 1
            inst.inbox.items.clear()  # what was queued dies with the process

        def restart() -> None:
            for inst in replicas:
                inst.down -= 1

        return restart
    if isinstance(fault, ServiceHang):
        released = env.event()
        for inst in replicas:
            inst.hung = released

        def unhang() -> None:
            for inst in replicas:
                inst.hung = None
            released.succeed()

        return unhang
    assert isinstance(fault, ServiceSlowdown)
    for inst in replicas:
        inst.slowdown = fault.factor

    def speed_up() -> None:
        for inst in replicas:
            inst.slowdown = 1.0

    return speed_up


def _link(machine: Machine, fault: LinkFault) -> Undo:
    link = machine.network.route(*fault.between)
    assert link is not None  # the scenario checks name only existing links
    if isinstance(fault, LinkPartition):
        link.partitioned = True

        def heal() -> None:
            link.partitioned = False

        return heal
    if isinstance(fault, LinkLoss):
        link.fault_loss = fault.loss

        def restore_loss() -> None:
            link.fault_loss = None

        return restore_loss
    assert isinstance(fault, LinkLatency)
    link.fault_extra_s += fault.extra_ms / 1000.0

    def restore_latency() -> None:
        link.fault_extra_s -= fault.extra_ms / 1000.0

    return restore_latency


def _servo(machine: Machine, index: int, fault: ServoFaultBase) -> Undo | None:
    if isinstance(fault, ServoDisconnect):
        bus = machine.driver.servo_bus
        bus.disconnected.add(fault.servo)  # type: ignore[union-attr]

        def reconnect() -> None:
            bus.disconnected.discard(fault.servo)  # type: ignore[union-attr]

        return reconnect
    assert machine.plant is not None
    servo = machine.plant.servo(fault.servo)
    if isinstance(fault, ServoOverload):
        servo.external_torque_nm += fault.torque_nm

        def unload() -> None:
            servo.external_torque_nm -= fault.torque_nm

        return unload
    if isinstance(fault, ServoOverheat):
        servo.force_overheat()  # latched, as on a real servo: only a reboot clears it
        return None
    assert isinstance(fault, EncoderNoise)
    rng = component_rng(machine.seed, f"fault:{index}:encoder_noise")
    std = math.radians(fault.std_deg)
    servo.encoder_noise = lambda: float(rng.normal(0.0, std))

    def quiet() -> None:
        servo.encoder_noise = None

    return quiet
