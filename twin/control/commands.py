"""Operator commands as they travel through gateway and planner (SI units)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Alarm", "Command", "EStop", "JointStates", "MoveCommand", "Setpoints", "SineCommand"]


@dataclass(frozen=True)
class MoveCommand:
    """Move every named joint to `target` (rad) in `duration_s`; others hold."""

    target: dict[str, float]
    duration_s: float


@dataclass(frozen=True)
class SineCommand:
    """Sine sweep of some joints for `duration_s` (rad, Hz)."""

    amplitude: dict[str, float]
    offset: dict[str, float]
    f0: dict[str, float]
    f1: dict[str, float]
    duration_s: float


Command = MoveCommand | SineCommand


@dataclass(frozen=True)
class JointStates:
    """What the driver publishes each cycle (joint frame, rad)."""

    t: float
    setpoint: tuple[float, ...]
    actual: tuple[float, ...]


@dataclass(frozen=True)
class Setpoints:
    """The driver's answer to a setpoint query (joint frame, rad).

    `current` is the setpoint in force; `target` is where the machine is headed
    (the end of the pending or active trajectory), so a command that names only
    some joints leaves the others on their way to their targets.
    """

    current: tuple[float, ...]
    target: tuple[float, ...]


@dataclass(frozen=True)
class Alarm:
    """What the driver announces on the `alarms` topic."""

    t: float
    servo_id: int
    what: str  # e.g. "overheat", "failed"


@dataclass(frozen=True)
class EStop:
    """An emergency stop, on the `estop` topic."""

    t: float
    source: str
