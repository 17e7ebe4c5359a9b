"""Telemetry: records the joint states the driver publishes, and the alarms, in the run's log.

It takes each event off its subscriber queue and spends its processing time on
it; a slow telemetry service fills its queue, and the queue's overflow policy
decides what is lost (or whether the publisher is held back). The control loop
never waits on telemetry unless the policy is `block`.
"""

from __future__ import annotations

from typing import Any

from twin.control.commands import Alarm, JointStates
from twin.patterns.eventbus import Event
from twin.services.api import Counter, Service, ServiceParams

__all__ = ["TelemetryParams", "TelemetryRecorder"]


class TelemetryParams(ServiceParams):
    pass


class TelemetryRecorder(Service[TelemetryParams]):
    Params = TelemetryParams
    description = "records joint states and alarms from the event bus"
    samples_recorded = Counter("joint-state samples recorded")
    alarms_recorded = Counter("alarms recorded")

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.alarms: list[Alarm] = []

    def start(self) -> None:
        self.ctx.subscribe("joint_states", self._record)
        self.ctx.subscribe("alarms", self._record_alarm)

    def _record(self, event: Event) -> None:
        s: JointStates = event.payload
        self.ctx.machine.recording.sample(s.t, s.setpoint, s.actual)
        self.samples_recorded.inc()

    def _record_alarm(self, event: Event) -> None:
        alarm: Alarm = event.payload
        if event.delivery == 1 or alarm not in self.alarms:
            self.alarms.append(alarm)
            self.alarms_recorded.inc()
            self.ctx.machine.recording.event(alarm.t, "alarm", servo=alarm.servo_id, what=alarm.what)
