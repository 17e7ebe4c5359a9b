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
from typing import Any

import numpy as np

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
)
CALL_PATHS = (("operator", "gateway"), ("gateway", "planner"), ("planner", "driver"))


def call_name(caller: str, callee: str) -> str:
    return f"{caller}_to_{callee}"


def breaker_name(caller: str, instance: str) -> str:
    """`gateway`, `planner#1` -> `gateway_to_planner_1` (a metric path segment)."""
    return f"{caller}_to_{instance.replace('#', '_')}"


def percentiles_ms(samples_s: Sequence[float]) -> dict[str, float | int | None]:
    """count, mean, p50, p95, p99, max in ms (None when there are no samples)."""
    if len(samples_s) == 0:
        return {
            "count": 0,
            "mean_ms": None,
            "p50_ms": None,
            "p95_ms": None,
            "p99_ms": None,
            "max_ms": None,
        }
    a = np.asarray(samples_s, dtype=float) * 1000.0
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {
        "count": int(a.size),
        "mean_ms": _r(a.mean()),
        "p50_ms": _r(p50),
        "p95_ms": _r(p95),
        "p99_ms": _r(p99),
        "max_ms": _r(a.max()),
    }


def _r(x: float) -> float:
    return round(float(x), 6)


@dataclass
class RunData:
    """Everything measured in a run that the metrics summarise (SI units)."""

    name: str
    seed: int
    duration_s: float
    dt_s: float
    joints: list[str]
    goal: np.ndarray  # (n, J) rad
    actual: np.ndarray  # (n, J) rad
    command_latency_s: list[float] = field(default_factory=list)
    links: dict[str, tuple[int, int, list[float]]] = field(default_factory=dict)  # messages, drops, latencies
    driver_period_s: float = 0.01
    driver_cycles: int = 0
    deadline_misses: int = 0
    skipped_periods: int = 0
    cycle_work_s: list[float] = field(default_factory=list)
    clipped_goals: int = 0
    bus_errors: int = 0
    commands_sent: int = 0
    commands_completed: int = 0
    commands_pending: int = 0  # sent, but the run ended before their outcome was known
    planner_stretched: int = 0
    planner_refused: int = 0
    servos: dict[int, tuple[float, list[str]]] = field(default_factory=dict)  # max temp, faults
    services: dict[str, tuple[int, int, int, int]] = field(
        default_factory=dict
    )  # handled, errors, queue, expired
    physics_steps: int = 0
    lateness_s: list[float] = field(default_factory=list)  # wall-clock runs: how late events ran
    failed_servos: int = 0
    halted: bool = False
    bus_counters: dict[str, int] = field(default_factory=dict)
    faults_injected: int = 0
    updates_completed: int = 0
    events: dict[str, dict[str, int]] = field(default_factory=dict)  # topic -> counters
    driver_blocked: int = 0
    gateway_unauthorized: int = 0
    gateway_rate_limited: int = 0
    # caller_to_callee -> calls, errors, attempts, retries, rejected, timeouts, latencies (s)
    calls: dict[str, tuple[int, int, int, int, int, int, list[float]]] = field(default_factory=dict)
    # caller_to_replica -> times opened, calls not permitted, seconds spent not CLOSED
    breakers: dict[str, tuple[int, int, float]] = field(default_factory=dict)
    discovery: dict[str, int] = field(default_factory=dict)


def build_metrics(d: RunData) -> dict[str, Any]:
    err_deg = np.degrees(d.goal - d.actual) if d.goal.size else np.zeros((0, len(d.joints)))
    joints = {}
    for k, name in enumerate(d.joints):
        e = err_deg[:, k] if err_deg.shape[0] else np.zeros(0)
        joints[name] = {
            "rms_error_deg": _r(np.sqrt(np.mean(e * e))) if e.size else None,
            "max_error_deg": _r(np.max(np.abs(e))) if e.size else None,
        }
    all_e = err_deg.ravel()
    return {
        "scenario": d.name,
        "seed": d.seed,
        "duration_s": _r(d.duration_s),
        "tracking": {
            "samples": int(err_deg.shape[0]),
            "rms_error_deg": _r(np.sqrt(np.mean(all_e * all_e))) if all_e.size else None,
            "max_error_deg": _r(np.max(np.abs(all_e))) if all_e.size else None,
            "joints": joints,
        },
        "latency": {"command": percentiles_ms(d.command_latency_s)},
        "commands": {
            "sent": d.commands_sent,
            "completed": d.commands_completed,
            "failed": d.commands_sent - d.commands_completed - d.commands_pending,
            "pending": d.commands_pending,
        },
        "links": {
            name: {"messages": m, "drops": dr, "latency": percentiles_ms(lat)}
            for name, (m, dr, lat) in sorted(d.links.items())
        },
        "driver": {
            "period_ms": _r(d.driver_period_s * 1000.0),
            "cycles": d.driver_cycles,
            "deadline_misses": d.deadline_misses,
            "skipped_periods": d.skipped_periods,
            "clipped_goals": d.clipped_goals,
            "bus_errors": d.bus_errors,
            "failed_servos": d.failed_servos,
            "halted": int(d.halted),
            "blocked": d.driver_blocked,
            "cycle_work": percentiles_ms(d.cycle_work_s),
        },
        "planner": {"stretched": d.planner_stretched, "refused": d.planner_refused},
        "servos": {
            str(i): {
                "max_temperature_c": _r(t) if math.isfinite(t) else None,
                "faults": ",".join(f) or "none",
            }
            for i, (t, f) in sorted(d.servos.items())
        },
        "services": {
            name: {"handled": h, "errors": e, "max_queue": q, "expired": x, "lost": lo}
            for name, (h, e, q, x, lo) in sorted(d.services.items())
        },
        "physics": {"steps": d.physics_steps, "dt_ms": _r(d.dt_s * 1000.0)},
        "realtime": {"lateness": percentiles_ms(d.lateness_s)},
        "bus": {name: d.bus_counters.get(name, 0) for name in BUS_COUNTERS},
        "faults": {"injected": d.faults_injected, "updates_completed": d.updates_completed},
        "calls": {
            name: {
                "calls": c,
                "errors": e,
                "attempts": a,
                "retries": r,
                "rejected": rj,
                "timeouts": t,
                "latency": percentiles_ms(lat),
            }
            for name, (c, e, a, r, rj, t, lat) in sorted(d.calls.items())
        },
        "breakers": {
            name: {"opened": o, "not_permitted": n, "seconds_not_closed": _r(s)}
            for name, (o, n, s) in sorted(d.breakers.items())
        },
        "discovery": {name: d.discovery.get(name, 0) for name in DISCOVERY_COUNTERS},
        "gateway": {"unauthorized": d.gateway_unauthorized, "rate_limited": d.gateway_rate_limited},
        "events": {
            topic: {name: d.events.get(topic, {}).get(name, 0) for name in EVENT_COUNTERS}
            for topic in sorted(set(d.events) | {"joint_states", "alarms", "estop"})
        },
    }


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
) -> RunData:
    """A run with nothing measured: the shape of the metrics a scenario will produce."""
    return RunData(
        name=name,
        seed=0,
        duration_s=0.0,
        dt_s=0.001,
        joints=joints,
        goal=np.zeros((0, len(joints))),
        actual=np.zeros((0, len(joints))),
        links={n: (0, 0, []) for n in links},
        servos={i: (0.0, []) for i in servo_ids},
        services={s: (0, 0, 0, 0, 0) for s in services},
        calls={call_name(a, b): (0, 0, 0, 0, 0, 0, []) for a, b in CALL_PATHS},
        breakers={b: (0, 0, 0.0) for b in breakers},
    )


def measured(metrics: Mapping[str, Any], path: str) -> float:
    """The value at a path as a float; NaN when the run produced no samples for it."""
    node: Any = metrics
    for part in path.split("."):
        node = node[part]
    return math.nan if node is None else float(node)
