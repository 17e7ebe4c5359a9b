"""Unit conversions every side shares: encoder ticks and rad, sign-magnitude integers.

Angles are output-shaft rad with 0 at the centre tick (`resolution // 2`); the
resolution (ticks per turn) is the servo model's, from the catalogue.
"""

from __future__ import annotations

import math
from typing import Protocol

from servo_core.errors import ConfigError

__all__ = [
    "TWO_PI",
    "WATCHDOG_UNIT_S",
    "watchdog_units",
    "HasResolution",
    "centre_tick",
    "decode_sign_magnitude",
    "encode_sign_magnitude",
    "rad_to_ticks",
    "servo_range_rad",
    "ticks_to_rad",
]

TWO_PI = 2.0 * math.pi


class HasResolution(Protocol):
    @property
    def resolution_ticks(self) -> int: ...


def centre_tick(resolution: int) -> int:
    """The tick that means 0 rad."""
    return resolution // 2


def ticks_to_rad(ticks: int, resolution: int) -> float:
    return (ticks - resolution // 2) * TWO_PI / resolution


def rad_to_ticks(angle: float, resolution: int) -> int:
    """Nearest tick for an angle (0 rad = the centre tick), within 0..resolution-1.

    Angles in the last half tick below π round to `resolution`, one past the
    range: they go to the last tick instead (within one tick of the angle).
    ConfigError for an angle that is not a finite number.
    """
    if not math.isfinite(angle):
        raise ConfigError(f"a goal must be a finite angle in rad, got {angle!r}")
    ticks = int(math.floor(angle * resolution / TWO_PI + 0.5)) + resolution // 2
    return resolution - 1 if ticks == resolution else ticks


def servo_range_rad(spec: HasResolution) -> tuple[float, float]:
    """The angles of the first and the last tick of a servo model (rad), e.g. (-π, π·2047/2048)."""
    resolution = spec.resolution_ticks
    return ticks_to_rad(0, resolution), ticks_to_rad(resolution - 1, resolution)


def decode_sign_magnitude(value: int, bit: int) -> int:
    """Feetech's signed fields: bit `bit` is the sign, the bits below it the magnitude."""
    magnitude = value & ((1 << bit) - 1)
    return -magnitude if value & (1 << bit) else magnitude


def encode_sign_magnitude(value: int, bit: int) -> int:
    """The sign-magnitude form of `value`, its magnitude saturated to `bit` bits."""
    limit = (1 << bit) - 1
    if value < 0:
        return min(-value, limit) | (1 << bit)
    return min(value, limit)


WATCHDOG_UNIT_S = 0.020
"""Dynamixel X Bus Watchdog (register 98) counts 20 ms units, 1..127 (e-Manual)."""
_WATCHDOG_UNITS = 127


def watchdog_units(timeout_s: float) -> int:
    """The Bus Watchdog value nearest `timeout_s` (s); ConfigError outside 0.02..2.54 s."""
    lo, hi = WATCHDOG_UNIT_S, _WATCHDOG_UNITS * WATCHDOG_UNIT_S
    if not lo - 1e-9 <= timeout_s <= hi + 1e-9:  # also rejects NaN
        raise ConfigError(
            f"bus watchdog timeout {timeout_s!r} s is outside {lo:g}..{hi:g} s (1..127 x 20 ms)"
        )
    return min(_WATCHDOG_UNITS, max(1, math.floor(timeout_s / WATCHDOG_UNIT_S + 0.5)))
