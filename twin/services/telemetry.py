"""Telemetry: records the joint states the driver publishes, and the alarms.

It takes each event off its subscriber queue and spends its processing time on
it; a slow telemetry service fills its queue, and the queue's overflow policy
decides what is lost (or whether the publisher is held back). The control loop
never waits on telemetry unless the policy is `block`.
"""

from __future__ import annotations

from typing import Any

from twin.control.commands import Alarm, JointStates
from twin.observe.telemetry import Telemetry
from twin.patterns.eventbus import Event
from twin.services.api import Counter, Service, ServiceParams

__all__ = ["TelemetryParams", "TelemetryRecorder", "merge_telemetry"]


class TelemetryParams(ServiceParams):
    pass


class TelemetryRecorder(Service[TelemetryParams]):
    Params = TelemetryParams
    description = "records joint states and alarms from the event bus"
    samples_recorded = Counter("joint-state samples recorded")
    alarms_recorded = Counter("alarms recorded")

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.samples: list[JointStates] = []
        self.alarms: list[Alarm] = []

    def start(self) -> None:
        self.ctx.subscribe("joint_states", self._record)
        self.ctx.subscribe("alarms", self._record_alarm)

    def _record(self, event: Event) -> None:
        self.samples.append(event.payload)
        self.samples_recorded.inc()

    def _record_alarm(self, event: Event) -> None:
        if event.delivery == 1 or event.payload not in self.alarms:
            self.alarms.append(event.payload)
            self.alarms_recorded.inc()


def merge_telemetry(joint_names: list[str], recorders: list[TelemetryRecorder]) -> Telemetry:
    """The recorded states of every replica in time order (a sample recorded twice counts once)."""
    tel = Telemetry(joint_names)
    seen: set[float] = set()
    samples = [s for r in recorders for s in r.samples]
    for s in sorted(samples, key=lambda s: s.t):
        if s.t not in seen:
            seen.add(s.t)
            tel.append(s.t, s.setpoint, s.actual)
    return tel
