"""What a bus reports about one servo, in one vocabulary whatever the vendor."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["SHUTDOWN_FAULTS", "ServoFault", "ServoState"]


class ServoFault(enum.IntFlag):
    """Hardware alarms in one vocabulary, whatever the vendor's bit layout."""

    NONE = 0
    INPUT_VOLTAGE = 1
    SENSOR = 2
    OVERHEAT = 4
    ENCODER = 8
    ELECTRICAL_SHOCK = 16
    OVERLOAD = 32


# Alarms after which a servo's firmware has cut its torque: it no longer follows goals.
SHUTDOWN_FAULTS = ServoFault.OVERHEAT | ServoFault.ELECTRICAL_SHOCK | ServoFault.OVERLOAD


@dataclass(frozen=True, slots=True)
class ServoState:
    """One servo's state at the moment it was read (output shaft, servo frame)."""

    id: int
    position: float  # rad, 0 at the centre tick
    velocity: float  # rad/s
    load: float  # fraction of maximum torque, -1..1
    current: float | None  # A, when the servo reports it
    temperature: float  # °C
    voltage: float  # V
    faults: ServoFault
    moving: bool
