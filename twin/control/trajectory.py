"""Time-parametrised joint trajectories (rad, s; time relative to activation).

A trajectory is planned by the planner and anchored by the driver at the
moment it takes it over, so network latency delays a motion but never
shortens it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Anchored",
    "min_jerk",
    "MIN_JERK_PEAK_VELOCITY",
    "Move",
    "SineSweep",
    "trapezoid",
    "TRAPEZOID_PEAK_VELOCITY",
]


def min_jerk(s: float) -> float:
    """Minimum-jerk shape: 0 → 1 over s in [0, 1], zero velocity and acceleration at both ends."""
    if s <= 0.0:
        return 0.0
    if s >= 1.0:
        return 1.0
    return s * s * s * (10.0 + s * (-15.0 + 6.0 * s))


MIN_JERK_PEAK_VELOCITY = 1.875  # peak of d/ds min_jerk(s)


def trapezoid(s: float, accel_fraction: float = 0.25) -> float:
    """Trapezoidal-velocity shape: accelerate for a fraction, cruise, decelerate."""
    if s <= 0.0:
        return 0.0
    if s >= 1.0:
        return 1.0
    a = accel_fraction
    v = 1.0 / (1.0 - a)  # cruise speed so that the area is 1
    if s < a:
        return 0.5 * v / a * s * s
    if s <= 1.0 - a:
        return 0.5 * v * a + v * (s - a)
    r = 1.0 - s
    return 1.0 - 0.5 * v / a * r * r


TRAPEZOID_PEAK_VELOCITY = 1.0 / (1.0 - 0.25)


@dataclass(frozen=True)
class Move:
    """Point-to-point move of every joint from `start` to `target` in `duration_s`."""

    start: tuple[float, ...]
    target: tuple[float, ...]
    duration_s: float
    profile: str = "min_jerk"

    def sample(self, t: float) -> list[float]:
        s = t / self.duration_s
        f = min_jerk(s) if self.profile == "min_jerk" else trapezoid(s)
        return [a + (b - a) * f for a, b in zip(self.start, self.target, strict=True)]

    @property
    def peak_shape_velocity(self) -> float:
        return MIN_JERK_PEAK_VELOCITY if self.profile == "min_jerk" else TRAPEZOID_PEAK_VELOCITY


@dataclass(frozen=True)
class SineSweep:
    """Sines about per-joint offsets; a linear chirp when f1 != f0. Other joints hold `base`."""

    base: tuple[float, ...]
    amplitude: tuple[float, ...]  # rad, 0 for joints that hold
    offset: tuple[float, ...]  # rad
    f0: tuple[float, ...]  # Hz
    f1: tuple[float, ...]  # Hz
    duration_s: float

    def sample(self, t: float) -> list[float]:
        t = min(max(t, 0.0), self.duration_s)
        out = []
        for i, base in enumerate(self.base):
            amp = self.amplitude[i]
            if amp == 0.0:
                out.append(base)
                continue
            k = (self.f1[i] - self.f0[i]) / self.duration_s
            phase = 2.0 * math.pi * (self.f0[i] * t + 0.5 * k * t * t)
            out.append(self.offset[i] + amp * math.sin(phase))
        return out


class Anchored:
    """A trajectory taken over at `t0`, blended in from the setpoint it replaces.

    Any difference between the setpoint in force and the trajectory's start
    (the planner's view of the state was a little old) fades out with a
    minimum-jerk weight over `blend_s`, so setpoints never jump.
    """

    def __init__(
        self, trajectory: Move | SineSweep, t0: float, current: Sequence[float], blend_s: float
    ) -> None:
        self.trajectory = trajectory
        self.t0 = t0
        first = trajectory.sample(0.0)
        self.delta = [c - f for c, f in zip(current, first, strict=True)]
        self.blend_s = max(blend_s, 1e-9)
        self.end_s = t0 + trajectory.duration_s

    def sample(self, now: float) -> list[float]:
        t = now - self.t0
        q = self.trajectory.sample(t)
        w = 1.0 - min_jerk(t / self.blend_s)
        if w > 0.0:
            q = [a + d * w for a, d in zip(q, self.delta, strict=True)]
        return q
