"""Metrics of a run, as one nested dict that becomes `metrics.json`.

Assertions address it by dotted paths (`tracking.max_error_deg`,
`latency.command.p99_ms`, `links.ctrl--edge.drops`). `metric_paths` gives
every valid path for a scenario before it runs, from the same builder, so a
path that validates is a path the run will produce.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from sim_models.network import LinkSnapshot
from twin.observe.runlog import TrackingStats

__all__ = [
    "UNUSED",
    "breaker_name",
    "build_metrics",
    "BUS_COUNTERS",
    "call_name",
    "CALL_PATHS",
    "DISCOVERY_COUNTERS",
    "empty_run",
    "EVENT_COUNTERS",
    "flatten",
    "measured",
    "numeric_paths",
    "percentiles",
    "percentiles_ms",
    "RESERVED_SECTIONS",
    "RunData",
    "SERVICE_COUNTERS",
    "tracking_metrics",
]

# Counters of a serial bus (zero for the twin's bus, which never loses a byte).
BUS_COUNTERS = (
    "transactions",
    "retries",
    "no_reply",
    "checksum_errors",
    "wrong_id",
    "status_errors",
    "errors_injected",
)


DISCOVERY_COUNTERS = ("refreshes", "stale_uses", "registered", "expired", "deregistered", "heartbeats_lost")
EVENT_COUNTERS = (
    "published",
    "lost",
    "redeliveries",
    "dead_lettered",
    "delivered",
    "dropped",
    "gaps_skipped",
    "held",
)
CALL_PATHS = (("operator", "gateway"), ("gateway", "planner"), ("planner", "driver"))


def call_name(caller: str, callee: str) -> str:
    return f"{caller}_to_{callee}"


def breaker_name(caller: str, instance: str) -> str:
    """`gateway`, `planner#1` -> `gateway_to_planner_1` (a metric path segment)."""
    return f"{caller}_to_{instance.replace('#', '_')}"


def percentiles_ms(samples_s: Sequence[float]) -> dict[str, float | int | None]:
    """count, mean, p50, p95, p99, max in ms (None when there are no samples)."""
    return percentiles(samples_s, scale=1000.0, unit="ms")


def percentiles(samples: Sequence[float], scale: float, unit: str) -> dict[str, float | int | None]:
    """count, mean, p50, p95, p99, max of `samples * scale`, keys suffixed with `_unit`."""
    keys = [f"{k}_{unit}" for k in ("mean", "p50", "p95", "p99", "max")]
    if len(samples) == 0:
        return {"count": 0, **dict.fromkeys(keys)}
    a = np.asarray(samples, dtype=float) * scale
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {
        "count": int(a.size),
        **dict(zip(keys, (_r(a.mean()), _r(p50), _r(p95), _r(p99), _r(a.max())), strict=True)),
    }


def _r(x: float) -> float:
    return round(float(x), 6)


class CallCounts(Protocol):
    """What one caller service saw of one callee (twin.services.calls.CallSnapshot has it)."""

    @property
    def calls(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def attempts(self) -> int: ...
    @property
    def retries(self) -> int: ...
    @property
    def rejected(self) -> int: ...
    @property
    def timeouts(self) -> int: ...
    @property
    def latency_s(self) -> Sequence[float]: ...


class BreakerCounts(Protocol):
    """One breaker's figures (twin.patterns.breaker.BreakerSnapshot has them)."""

    @property
    def times_opened(self) -> int: ...
    @property
    def calls_not_permitted(self) -> int: ...
    @property
    def seconds_not_closed(self) -> float: ...


@dataclass(frozen=True)
class _Unused:
    """A call path or a breaker with nothing measured."""

    calls: int = 0
    errors: int = 0
    attempts: int = 0
    retries: int = 0
    rejected: int = 0
    timeouts: int = 0
    latency_s: tuple[float, ...] = ()
    times_opened: int = 0
    calls_not_permitted: int = 0
    seconds_not_closed: float = 0.0


UNUSED = _Unused()


@dataclass
class RunData:
    """Everything measured in a run that the metrics summarise (SI units, or already exported)."""

    name: str
    seed: int
    duration_s: float
    dt_s: float
    joints: list[str]
    tracking: TrackingStats  # goal − actual per joint, rad
    links: dict[str, LinkSnapshot] = field(default_factory=dict)
    servos: dict[int, tuple[float, list[str]]] = field(default_factory=dict)  # max temp, faults
    services: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> SERVICE_COUNTERS
    own: dict[str, dict[str, Any]] = field(default_factory=dict)  # service name -> its own metrics
    commands: tuple[int, int, int] = (0, 0, 0)  # sent, completed, failed (the rest are pending)
    command_latency: dict[str, Any] | None = None  # reached the servo (exported percentiles)
    accepted_latency: dict[str, Any] | None = None  # the gateway's reply to the operator
    physics_steps: int = 0
    lateness_s: Sequence[float] = field(default_factory=list)  # wall-clock runs: how late events ran
    bus_counters: dict[str, int] = field(default_factory=dict)
    faults_injected: int = 0
    updates_completed: int = 0
    events: dict[str, dict[str, int]] = field(default_factory=dict)  # topic -> counters
    calls: Mapping[str, CallCounts] = field(default_factory=dict)  # caller_to_callee -> what the caller saw
    breakers: Mapping[str, BreakerCounts] = field(default_factory=dict)  # caller_to_replica -> its breaker
    discovery: dict[str, int] = field(default_factory=dict)
    calls_per_replica: dict[str, int] = field(default_factory=dict)


SERVICE_COUNTERS = ("replicas", "handled", "errors", "max_queue", "expired", "lost", "failures")
RESERVED_SECTIONS = frozenset(
    {
        "scenario",
        "seed",
        "duration_s",
        "tracking",
        "latency",
        "commands",
        "links",
        "servos",
        "services",
        "physics",
        "realtime",
        "bus",
        "faults",
        "calls",
        "breakers",
        "discovery",
        "events",
        "shadow",
    }
)
"""Top-level keys of metrics.json that a service's name may not take (its own metrics go there)."""


def tracking_metrics(joints: Sequence[str], tr: TrackingStats) -> dict[str, Any]:
    """The `tracking` section: goal − actual per joint and over all, in degrees."""
    n_all = sum(tr.counts)
    return {
        "samples": tr.samples,
        "rms_error_deg": _r(math.degrees(math.sqrt(sum(tr.sum_sq) / n_all))) if n_all else None,
        "max_error_deg": _r(math.degrees(max(tr.max_abs))) if n_all else None,
        "joints": {
            name: {
                "rms_error_deg": _r(math.degrees(math.sqrt(tr.sum_sq[k] / n)))
                if (n := tr.counts[k])
                else None,
                "max_error_deg": _r(math.degrees(tr.max_abs[k])) if tr.counts[k] else None,
            }
            for k, name in enumerate(joints)
        },
    }


def build_metrics(d: RunData) -> dict[str, Any]:
    sent, completed, failed = d.commands
    out: dict[str, Any] = {
        "scenario": d.name,
        "seed": d.seed,
        "duration_s": _r(d.duration_s),
        "tracking": tracking_metrics(d.joints, d.tracking),
        "latency": {
            "command": d.command_latency or percentiles_ms([]),
            "command_accepted": d.accepted_latency or percentiles_ms([]),
        },
        "commands": {
            "sent": sent,
            "completed": completed,
            "failed": failed,
            "pending": sent - completed - failed,
        },
        "links": {
            name: {"messages": ln.messages, "drops": ln.drops, "latency": percentiles_ms(ln.latencies_s)}
            for name, ln in sorted(d.links.items())
        },
        "servos": {
            str(i): {
                "max_temperature_c": _r(t) if math.isfinite(t) else None,
                "faults": ",".join(f) or "none",
            }
            for i, (t, f) in sorted(d.servos.items())
        },
        "services": {
            name: {key: int(counters.get(key, 0)) for key in SERVICE_COUNTERS}
            for name, counters in sorted(d.services.items())
        },
        "physics": {"steps": d.physics_steps, "dt_ms": _r(d.dt_s * 1000.0)},
        "realtime": {"lateness": percentiles_ms(d.lateness_s)},
        "bus": {name: d.bus_counters.get(name, 0) for name in BUS_COUNTERS},
        "faults": {"injected": d.faults_injected, "updates_completed": d.updates_completed},
        "calls": {
            name: {
                "calls": c.calls,
                "errors": c.errors,
                "attempts": c.attempts,
                "retries": c.retries,
                "rejected": c.rejected,
                "timeouts": c.timeouts,
                "latency": percentiles_ms(c.latency_s),
            }
            for name, c in sorted(d.calls.items())
        },
        "breakers": {
            name: {
                "opened": b.times_opened,
                "not_permitted": b.calls_not_permitted,
                "seconds_not_closed": _r(b.seconds_not_closed),
            }
            for name, b in sorted(d.breakers.items())
        },
        "discovery": {
            **{name: d.discovery.get(name, 0) for name in DISCOVERY_COUNTERS},
            "calls_per_replica": {k.replace("#", "_"): v for k, v in sorted(d.calls_per_replica.items())},
        },
        "events": {
            topic: {name: d.events.get(topic, {}).get(name, 0) for name in EVENT_COUNTERS}
            for topic in sorted(set(d.events) | {"joint_states", "alarms", "estop"})
        },
    }
    for name, section in sorted(d.own.items()):
        out[name] = section
    return out


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def numeric_paths(metrics: Mapping[str, Any]) -> set[str]:
    """Paths whose values are (or may be, when empty) numbers."""
    return {
        p
        for p, v in flatten(metrics).items()
        if v is None or (isinstance(v, int | float) and not isinstance(v, bool))
    }


def empty_run(
    name: str,
    joints: list[str],
    links: list[str],
    servo_ids: list[int],
    services: list[str],
    breakers: Sequence[str] = (),
    own: Mapping[str, dict[str, Any]] | None = None,
    calls: Sequence[tuple[str, str]] = (),
) -> RunData:
    """A run with nothing measured: the shape of the metrics a scenario will produce."""
    return RunData(
        name=name,
        seed=0,
        duration_s=0.0,
        dt_s=0.001,
        joints=joints,
        tracking=TrackingStats(len(joints)),
        links={n: LinkSnapshot(n, 0, 0, ()) for n in links},
        servos={i: (0.0, []) for i in servo_ids},
        services={s: {} for s in services},
        own=dict(own or {}),
        calls={call_name(a, b): UNUSED for a, b in (*CALL_PATHS, *calls)},
        breakers=dict.fromkeys(breakers, UNUSED),
    )


def measured(metrics: Mapping[str, Any], path: str) -> float:
    """The value at a path as a float; NaN when the run produced no samples for it."""
    node: Any = metrics
    for part in path.split("."):
        node = node[part]
    return math.nan if node is None else float(node)
