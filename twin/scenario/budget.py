"""How much work a scenario asks for, bounded before anything runs.

A run's cost grows with three numbers that no single field shows: physics steps
(duration / physics.dt_s), control cycles (duration × the bus owner's rate_hz) and
telemetry (one sample per cycle, a time and a goal and an actual angle per joint).
A scenario that asks for more than the limits below is refused at validation, with
the number, the limit and the fields to change, instead of running for hours or
filling the memory.

The limits come from measurements on a 2-core development machine (Python 3.11,
PyBullet 3.2): a physics step of the built-in robots costs 7-17 µs, a control cycle
of the reference services 65 µs with two servos (more with six), a telemetry sample
~120 bytes of telemetry.csv for six joints (9 bytes a value) and, held in memory,
up to ~45 bytes a value. Each limit keeps the worst accepted run under half an hour
of computing or a few hundred MB of telemetry, and still admits a day of simulated
time (the longest duration allowed) at the default 1 ms step and 100 Hz control
rate. The shipped scenarios use at most 20,000 steps and 2,400 cycles.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from servo_core.errors import ConfigError
from twin.plugins import service_class
from twin.scenario.models import PhysicsConfig, Scenario
from twin.scenario.problems import dotted
from twin.services.telemetry import TelemetryRecorder

__all__ = [
    "MAX_CONTROL_CYCLES",
    "MAX_PHYSICS_STEPS",
    "MAX_TELEMETRY_VALUES",
    "Work",
    "check_work",
    "measure_work",
]

MAX_PHYSICS_STEPS = 100_000_000
"""Most physics steps a run may take: ≤ ~30 min of stepping at 7-17 µs a step; a day at 1 ms is 86.4 M."""
MAX_CONTROL_CYCLES = 10_000_000
"""Most control cycles a run may take: ~11 min at 65 µs a cycle (two servos); a day at 100 Hz is 8.64 M."""
MAX_TELEMETRY_VALUES = 50_000_000
"""Most numbers telemetry may record (time + goal and actual per joint, per sample): ~460 MB of
telemetry.csv; a day at 100 Hz is 43 M values for two joints."""

Path = tuple[str | int, ...]
_RATE = "rate_hz"


def _whole(x: float) -> int:
    """Steps or cycles to cover `x` of them, not counting float noise (4.001 / 0.001 is
    4001.0000000000005); a count past any float (a step of 1e-320 s) as 1e300."""
    return math.ceil(round(x, 6)) if x < 1e15 else int(min(x, 1e300))


def _count(n: float) -> str:
    if n >= 1e300:
        return "more than 1e300"
    return f"{n:,.0f}" if n < 1e15 else f"{n:.3g}"


@dataclass(frozen=True)
class Work:
    """What a run of a scenario will do, at most."""

    physics_steps: int
    control_cycles: int
    """0 when the bus owner has no `rate_hz`."""
    telemetry_samples: int
    """0 when no service records telemetry."""
    telemetry_values: int
    """Numbers recorded: per sample a time, and a goal and an actual angle per joint."""
    rate_hz: float | None
    """The bus owner's control rate, when it has one."""
    rate_at: Path | None
    """Where the bus owner's rate is set (its service entry's `rate_hz`), when it has one."""
    rate_is_raised: bool
    """Whether that rate is above its default (then it, not the duration, is blamed)."""


def measure_work(s: Scenario) -> Work:
    steps = _whole(s.duration / s.physics.dt_s)
    owner = _periodic_bus_owner(s)
    if owner is None:
        return Work(steps, 0, 0, 0, None, None, False)
    index, rate, raised = owner
    cycles = _whole(s.duration * rate)
    samples = cycles if _records_telemetry(s) else 0
    values = samples * (1 + 2 * len(s.plant.servos))
    return Work(steps, cycles, samples, values, rate, ("topology", "services", index, _RATE), raised)


def check_work(s: Scenario) -> Iterator[tuple[Path, str]]:
    """(field path, message) for each measure of work over its limit."""
    work = measure_work(s)
    dt = s.physics.dt_s
    if work.physics_steps > MAX_PHYSICS_STEPS:
        default_dt = PhysicsConfig.model_fields["dt_s"].default
        at: Path = ("physics", "dt_s") if dt < default_dt else ("duration",)
        yield (
            at,
            f"{s.duration:g} s at physics.dt_s = {dt:g} s is {_count(work.physics_steps)} physics steps, "
            f"more than the limit of {_count(MAX_PHYSICS_STEPS)}: raise physics.dt_s "
            f"(default {default_dt:g}) or shorten duration",
        )
    if work.rate_at is None:
        return
    blame = work.rate_at if work.rate_is_raised else ("duration",)
    fields = f"lower {dotted(work.rate_at)} or shorten duration"
    owner = s.topology.services[int(work.rate_at[2])].service_name
    if work.control_cycles > MAX_CONTROL_CYCLES:
        yield (
            blame,
            f"{owner} at {work.rate_hz:g} Hz for {s.duration:g} s runs {_count(work.control_cycles)} "
            f"control cycles, more than the limit of {_count(MAX_CONTROL_CYCLES)}: {fields}",
        )
    if work.telemetry_values > MAX_TELEMETRY_VALUES:
        yield (
            blame,
            f"telemetry would record {_count(work.telemetry_samples)} samples of {len(s.plant.servos)} "
            f"joint(s), {_count(work.telemetry_values)} values (time, goal and actual per joint), "
            f"more than the limit of {_count(MAX_TELEMETRY_VALUES)}: {fields}",
        )


def _service(svc: Any) -> tuple[type[Any], Any] | None:
    """The service's class and validated parameters; None when either is bad (reported elsewhere)."""
    try:
        cls = service_class(svc.type, svc.class_path)
        return cls, cls.Params.model_validate(svc.params)
    except (ConfigError, ValidationError):
        return None


def _periodic_bus_owner(s: Scenario) -> tuple[int, float, bool] | None:
    """(index, rate in Hz, whether the rate is above its default) of the service that owns the
    servo bus, when it runs at a `rate_hz`."""
    for k, svc in enumerate(s.topology.services):
        found = _service(svc)
        if found is None:
            continue
        cls, params = found
        owns = svc.servo_bus or (svc.servo_bus is None and cls.wants_servo_bus)
        rate = getattr(params, _RATE, None)
        if owns and isinstance(rate, int | float) and rate > 0:
            default = cls.Params.model_fields[_RATE].default if _RATE in cls.Params.model_fields else None
            return k, float(rate), not isinstance(default, int | float) or rate > default
    return None


def _records_telemetry(s: Scenario) -> bool:
    for svc in s.topology.services:
        found = _service(svc)
        if found is not None and issubclass(found[0], TelemetryRecorder):
            return True
    return False
