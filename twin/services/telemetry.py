"""Telemetry: records the joint states the driver publishes."""

from __future__ import annotations

from dataclasses import dataclass, field

from twin.observe.telemetry import Telemetry
from twin.services.base import Instance, Message, Service
from twin.services.commands import JointStates


@dataclass
class TelemetryRecorder(Service):
    joint_names: list[str] = field(default_factory=list)
    samples: list[JointStates] = field(default_factory=list)

    def handle(self, inst: Instance, message: Message) -> None:
        if message.kind == "joint_states":
            self.samples.append(message.body)
        return None

    def telemetry(self) -> Telemetry:
        """The recorded states in time order (links may deliver out of order)."""
        tel = Telemetry(self.joint_names)
        for s in sorted(self.samples, key=lambda s: s.t):
            tel.append(s.t, s.setpoint, s.actual)
        return tel
