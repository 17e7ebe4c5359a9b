"""A scenario wired up: the clock, the plant, the network, the replicas and their services.

The Machine is what faults act on (through the owners' methods) and what the run's
metrics are read from (through snapshots). It is built by twin.assembly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import simpy

from hw_adapters import BusError, ServoBus
from hw_adapters.faulty import FaultInjectingBus
from servo_core.errors import ConfigError
from sim_models.network import Link, Network
from sim_models.plant import Plant
from sim_models.servo.device import VirtualServo
from twin.control.joints import Joint
from twin.observe.runlog import RunLog
from twin.observe.trace import Tracer
from twin.patterns.discovery_service import Discovery
from twin.patterns.eventbus import EventBus
from twin.services.api import Service
from twin.services.calls import CallPipeline, CallPolicy
from twin.services.driver import Driver
from twin.services.hosting import Hosting, ServiceFailure
from twin.services.messaging import MessageBus
from twin.services.operator import Operator
from twin.services.replica import Replica
from twin.services.telemetry import TelemetryRecorder

__all__ = ["Machine", "ServiceGroup", "Traffic"]


@dataclass
class Traffic:
    """One-way traffic per edge (source service, destination, channel): messages sent, and of
    them those that failed (lost, dropped by a full queue, dead-lettered, refused)."""

    edges: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)

    def count(self, src: str, dst: str, channel: str, failed: bool) -> None:
        counts = self.edges.get((src, dst, channel))
        if counts is None:
            counts = self.edges[(src, dst, channel)] = [0, 0]
        counts[0] += 1
        counts[1] += failed


@dataclass
class ServiceGroup:
    """One service of the scenario: its class, its replicas and one object per replica."""

    name: str
    cls: type[Service[Any]]
    replicas: list[Replica]
    objects: list[Service[Any]]


@dataclass
class Machine:
    name: str
    seed: int
    duration_s: float
    env: simpy.Environment
    plant: Plant | None  # None when the servos are real (a bus URL was given)
    network: Network
    joints: list[Joint]
    tracer: Tracer
    messages: MessageBus
    calls: CallPipeline
    policies: dict[tuple[str, str], CallPolicy]
    events: EventBus
    hosting: Hosting
    services: dict[str, ServiceGroup]
    servo_bus: ServoBus
    bus_owner: str
    discovery_service: Discovery | None = None
    traffic: Traffic = field(default_factory=Traffic)
    log: RunLog = field(default_factory=lambda: RunLog(["_"]))
    faults_injected: int = 0
    updates_completed: int = 0
    _closed: bool = field(default=False, repr=False)

    # -- typed views of the built-in roles ------------------------------------------------
    def service_objects(self, cls: type[Any]) -> list[Any]:
        return [obj for group in self.services.values() for obj in group.objects if isinstance(obj, cls)]

    @property
    def driver(self) -> Driver | None:
        owner = self.services[self.bus_owner].objects[0]
        return owner if isinstance(owner, Driver) else None

    @property
    def operator(self) -> Operator | None:
        found = self.service_objects(Operator)
        return found[0] if found else None

    @property
    def recorders(self) -> list[TelemetryRecorder]:
        return self.service_objects(TelemetryRecorder)

    @property
    def failures(self) -> list[ServiceFailure]:
        return self.hosting.failures

    # -- FaultTargets ---------------------------------------------------------------------
    def replicas(self, service: str, replica: int | None = None) -> list[Replica]:
        group = self.services.get(service)
        if group is None:
            raise ConfigError(f"no service named {service!r}")
        return [r for r in group.replicas if replica is None or r.index == replica]

    def link(self, a: str, b: str) -> Link:
        link = self.network.route(a, b)
        if link is None:
            raise ConfigError(f"no link joins {a} and {b}")
        return link

    def servo(self, servo_id: int) -> VirtualServo:
        if self.plant is None:
            raise ConfigError("servo faults act on the twin's servos; with --bus the servos are real")
        return self.plant.servo(servo_id)

    def faulty_bus(self) -> FaultInjectingBus:
        if not isinstance(self.servo_bus, FaultInjectingBus):
            raise ConfigError("bus faults act on the twin's bus; with --bus the servos are real")
        return self.servo_bus

    def discovery(self) -> Discovery:
        if self.discovery_service is None:
            raise ConfigError("this fault needs topology.discovery (a registry)")
        return self.discovery_service

    def press_estop(self) -> None:
        operator = self.operator
        if operator is None:
            raise ConfigError("an e-stop is pressed by the operator: the scenario has no operator service")
        operator.press_estop()

    def catch_up(self) -> None:
        if self.plant is not None:
            self.plant.advance_to(self.env.now)

    def fault_injected(self) -> None:
        self.faults_injected += 1

    def update_completed(self) -> None:
        self.updates_completed += 1

    # -- lifetime ---------------------------------------------------------------------------
    def safe_stop(self, attempts: int = 3) -> list[int]:
        """Torque off on every servo of the machine, failed ones included (a servo the bus gave
        up on may answer again), each written alone and retried; returns the ids that never
        took the write. The run log records it."""
        refused = []
        for joint in self.joints:
            for _ in range(attempts):
                try:
                    self.servo_bus.set_torque([joint.servo_id], False)
                except BusError:
                    continue
                break
            else:
                refused.append(joint.servo_id)
        self.log.event(self.env.now, "torque_off", servos=[j.servo_id for j in self.joints], refused=refused)
        return refused

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.servo_bus.close()
        finally:
            if self.plant is not None:
                self.plant.close()
