"""Joint limits and calibration between joint angles and servo angles (rad)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Calibration", "clip_to_limits", "JointLimits"]


@dataclass(frozen=True)
class JointLimits:
    lower: float  # rad
    upper: float  # rad
    max_velocity: float  # rad/s

    def contains(self, q: float) -> bool:
        return self.lower <= q <= self.upper


@dataclass(frozen=True)
class Calibration:
    """servo angle = direction · joint angle + offset (rad)."""

    direction: int = 1
    offset: float = 0.0

    def to_servo(self, q: float) -> float:
        return self.direction * q + self.offset

    def to_joint(self, servo_angle: float) -> float:
        return (servo_angle - self.offset) * self.direction


def clip_to_limits(goals: Sequence[float], limits: Sequence[JointLimits]) -> tuple[list[float], int]:
    """Goals clipped into their limits, and how many had to be clipped.

    The last line of defence in the driver: whatever the planner sent, no goal
    outside a joint's limits reaches the bus.
    """
    out, clipped = [], 0
    for q, lim in zip(goals, limits, strict=True):
        if q < lim.lower:
            q, clipped = lim.lower, clipped + 1
        elif q > lim.upper:
            q, clipped = lim.upper, clipped + 1
        out.append(q)
    return out, clipped
