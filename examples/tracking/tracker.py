"""A tracker service: turns the camera's detections into pan/tilt commands through the gateway.

It leads the target by the pipeline's delay (frame age plus the time the head
needs), estimated from the last two detections, and skips a detection while a
command is still on its way so that commands never queue up.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy
from pydantic import Field

from servo_core.errors import TwinError
from twin.service import Counter, Event, MoveCommand, RequestFailed, Service, ServiceParams


class TrackerParams(ServiceParams):
    gateway: str = "gateway"
    token: str = Field(default="", description="this client's token at the gateway")
    move_ms: float = Field(default=60.0, gt=0, description="how long each correction may take")
    lead_ms: float = Field(default=80.0, ge=0, description="how far ahead of a detection to aim")
    timeout_ms: float = Field(default=200.0, gt=0)
    pan_joint: str = "pan"
    tilt_joint: str = "tilt"


class Tracker(Service[TrackerParams]):
    Params = TrackerParams
    description = "points the head at the detected target"
    commands_sent = Counter("commands sent to the gateway")
    commands_refused = Counter("commands the gateway or the planner refused")
    detections_skipped = Counter("detections that came while a command was in flight")

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self._last: Any = None
        self._busy = False

    def start(self) -> None:
        self.ctx.subscribe("detections", self._on_detection)

    def _on_detection(self, event: Event) -> Generator[simpy.Event, Any, None] | None:
        seen, self._last = self._last, event.payload
        if self._busy:
            self.detections_skipped.inc()
            return None
        return self._command(seen, event.payload)

    def _command(self, previous: Any, current: Any) -> Generator[simpy.Event, Any, None]:
        p, ctx = self.params, self.ctx
        lead = p.lead_ms / 1000.0 + (ctx.now - current.t)
        pan, tilt = current.pan, current.tilt
        if previous is not None and current.t > previous.t:
            dt = current.t - previous.t
            pan += (current.pan - previous.pan) / dt * lead
            tilt += (current.tilt - previous.tilt) / dt * lead
        command = MoveCommand({p.pan_joint: pan, p.tilt_joint: tilt}, p.move_ms / 1000.0)
        self._busy = True
        self.commands_sent.inc()
        try:
            yield from ctx.call(p.gateway, "command", command, timeout_s=p.timeout_ms / 1000.0, token=p.token)
        except RequestFailed:
            self.commands_refused.inc()
        except TwinError:
            ctx.replica_errors()
        finally:
            self._busy = False
