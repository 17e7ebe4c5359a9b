"""A machine's joints as the control core sees them."""

from __future__ import annotations

from dataclasses import dataclass

from twin.control.limits import Calibration, JointLimits

__all__ = ["Joint"]


@dataclass(frozen=True)
class Joint:
    name: str
    servo_id: int
    limits: JointLimits
    calibration: Calibration
