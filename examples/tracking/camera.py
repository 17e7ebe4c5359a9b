"""A camera service: sees a target moving on a circle and publishes detections at a frame rate.

Each detection is the target's pan/tilt direction with pixel noise, published
after an image-processing time drawn from a log-normal distribution. The camera
also knows where the target really is, so it measures how far the head points
away from it (from the joint states the driver publishes).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import simpy
from pydantic import Field

from twin.service import Counter, Event, Histogram, JointStates, Service, ServiceParams


@dataclass(frozen=True)
class Detection:
    t: float  # s, when the frame was taken
    pan: float  # rad
    tilt: float  # rad


class CameraParams(ServiceParams):
    fps: float = Field(default=30.0, gt=0, le=1000)
    radius_deg: float = Field(
        default=20.0, ge=0, le=60, description="the target's circle, seen from the head"
    )
    period_s: float = Field(default=4.0, gt=0, description="one lap of the circle")
    noise_deg: float = Field(default=0.3, ge=0, description="detection noise (1 sigma)")
    processing_median_ms: float = Field(default=12.0, gt=0)
    processing_sigma: float = Field(default=0.3, ge=0, le=2)
    pan_joint: str = "pan"
    tilt_joint: str = "tilt"


class Camera(Service[CameraParams]):
    Params = CameraParams
    description = "publishes target detections at a frame rate"
    frames = Counter("frames taken")
    aim_error = Histogram("angle between where the head points and the target", unit="deg")
    processing = Histogram("image-processing time per frame")

    def start(self) -> None:
        self.ctx.every(1.0 / self.params.fps, self._frame)
        self.ctx.subscribe("joint_states", self._watch_head)

    def target(self, t: float) -> tuple[float, float]:
        """Where the target really is at `t` (pan, tilt in rad)."""
        p = self.params
        phase = 2 * math.pi * t / p.period_s
        r = math.radians(p.radius_deg)
        return r * math.cos(phase), 0.5 * r * math.sin(phase)

    def _frame(self) -> Generator[simpy.Event, Any, None]:
        ctx, p = self.ctx, self.params
        taken = ctx.now
        pan, tilt = self.target(taken)
        noise = math.radians(p.noise_deg)
        detection = Detection(
            taken, pan + float(ctx.rng.normal(0, noise)), tilt + float(ctx.rng.normal(0, noise))
        )
        busy = p.processing_median_ms / 1000.0 * math.exp(float(ctx.rng.normal(0, p.processing_sigma)))
        self.frames.inc()
        self.processing.observe(busy)
        yield ctx.sleep(busy)
        ctx.publish("detections", detection)

    def _watch_head(self, event: Event) -> None:
        states: JointStates = event.payload
        names = [j.name for j in self.ctx.machine.joints]
        pan = states.actual[names.index(self.params.pan_joint)]
        tilt = states.actual[names.index(self.params.tilt_joint)]
        want_pan, want_tilt = self.target(states.t)
        self.aim_error.observe(math.degrees(math.hypot(pan - want_pan, tilt - want_tilt)))
