"""Telemetry: consumes the joint states the driver publishes on the event bus.

It takes each event off its subscriber queue and spends its processing time on
it; a slow telemetry service fills its queue, and the queue's overflow policy
decides what is lost (or whether the publisher is held back). The control
loop itself never waits on telemetry unless the policy is `block`.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from twin.observe.telemetry import Telemetry
from twin.patterns.eventbus import QoS, Subscription
from twin.services.base import Instance, Message, Service
from twin.services.commands import JointStates


@dataclass
class TelemetryRecorder(Service):
    joint_names: list[str] = field(default_factory=list)
    samples: list[JointStates] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)  # one per replica
    qos: QoS = QoS.AT_MOST_ONCE
    alarm_subscriptions: list[Subscription] = field(default_factory=list)
    alarms: list[Any] = field(default_factory=list)  # Alarm events, as recorded

    def start(self) -> None:
        super().start()
        for inst, sub in zip(self.replicas, self.subscriptions, strict=True):
            inst.env.process(self._consume(inst, sub))
        for inst, sub in zip(self.replicas, self.alarm_subscriptions, strict=True):
            inst.env.process(self._record_alarms(inst, sub))

    def _record_alarms(self, inst: Instance, sub: Subscription) -> Generator[simpy.Event, Any, None]:
        while True:
            event = yield sub.get()
            if inst.crashed:
                continue  # not acknowledged: it will come again
            if event.delivery == 1 or event.payload not in self.alarms:
                self.alarms.append(event.payload)
            sub.ack(event)

    def _consume(self, inst: Instance, sub: Subscription) -> Generator[simpy.Event, Any, None]:
        env = inst.env
        while True:
            event = yield sub.get()
            delay = inst.processing.sample() * inst.slowdown
            if delay > 0:
                yield env.timeout(delay)
            if inst.crashed:
                inst.stats.lost += 1
                continue
            inst.stats.handled += 1
            self.samples.append(event.payload)
            if self.qos == QoS.AT_LEAST_ONCE:
                sub.ack(event)

    def handle(self, inst: Instance, message: Message) -> None:
        return None  # telemetry takes no requests

    def telemetry(self) -> Telemetry:
        """The recorded states in time order (a redelivered sample is recorded once)."""
        tel = Telemetry(self.joint_names)
        seen: set[float] = set()
        for s in sorted(self.samples, key=lambda s: s.t):
            if s.t not in seen:
                seen.add(s.t)
                tel.append(s.t, s.setpoint, s.actual)
        return tel
