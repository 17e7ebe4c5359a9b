"""The human-readable ``report.md`` of a run.

The report is deterministic (no timestamps, no host names): two identical runs give
byte-identical reports. Every link in it is relative to the run directory, so the
directory can be moved or archived as a whole. Nothing under a key named ``token``,
``tokens`` or ``clients`` (any case, at any depth, or as a segment of a flat dotted key)
is ever printed: those hold credentials.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twin.observe.files import write_text_atomic

__all__ = ["AssertionOutcome", "write_report", "REPORT_NAME"]

REPORT_NAME = "report.md"

_MISSING = object()

SECRET_KEYS = frozenset({"token", "tokens", "clients"})
"""Keys whose values never appear in a report (credentials of the gateway's clients)."""

EVENT_COLUMNS = (
    "published",
    "delivered",
    "lost",
    "dropped",
    "redeliveries",
    "dead_lettered",
    "gaps_skipped",
    "held",
)
"""Event-topic counters in the order they are shown; other counters follow in sorted order."""


@dataclass(frozen=True)
class AssertionOutcome:
    """The result of one scenario assertion.

    ``expression`` is as written in the scenario (e.g. ``"tracking.max_error_deg < 2.0"``),
    ``measured`` the value of its left-hand side (in the metric's own unit), ``passed``
    whether it held.
    """

    expression: str
    measured: float
    passed: bool


def _lookup(metrics: Mapping[str, Any], dotted: str) -> Any:
    """Value at ``dotted`` (``"a.b.c"``) in nested ``metrics``, or a flat ``"a.b.c"`` key.

    Returns the module sentinel ``_MISSING`` when absent.
    """
    if dotted in metrics:
        return metrics[dotted]
    node: Any = metrics
    for part in dotted.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return _MISSING
    return node


def _fmt(value: Any) -> str:
    """Format a number for a table cell: integers exactly, floats with 6 significant digits."""
    if value is _MISSING or value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.6g}"
    try:
        return _fmt(float(value))  # NumPy scalars and the like
    except (TypeError, ValueError):
        return _cell(str(value))


def _cell(text: str) -> str:
    """Escape ``text`` for a Markdown table cell (pipes, newlines)."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """Markdown table lines; ``align`` holds one of ``l``/``r``/``c`` per column."""
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(marks[a] for a in align) + "|",
    ]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _rel_link(target: Path, run_dir: Path) -> str:
    """Link text for ``target`` relative to ``run_dir``: forward slashes, spaces escaped.

    An absolute ``target`` is made relative to ``run_dir``; a relative one that starts
    with a relative ``run_dir`` has that prefix removed; any other relative ``target`` is
    taken as already relative to ``run_dir``.
    """
    if target.is_absolute():
        rel = os.path.relpath(os.path.abspath(target), os.path.abspath(run_dir))
    elif not run_dir.is_absolute() and run_dir.parts and target.is_relative_to(run_dir):
        rel = str(target.relative_to(run_dir))
    else:
        rel = str(target)
    return Path(rel).as_posix().replace(" ", "%20")


def _is_secret(key: Any) -> bool:
    return any(part.strip().lower() in SECRET_KEYS for part in str(key).split("."))


def _scrub(value: Any) -> Any:
    """``value`` with every mapping entry under a secret key removed, at any depth."""
    if isinstance(value, Mapping):
        return {k: _scrub(v) for k, v in value.items() if not _is_secret(k)}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def _section(metrics: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``metrics[key]`` when it is a non-empty mapping, else an empty one."""
    value = _lookup(metrics, key)
    return value if isinstance(value, Mapping) and value else {}


def _get(stats: Any, *path: str) -> Any:
    node = stats
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _percentile(stats: Any, name: str) -> Any:
    """``stats[name]`` or ``stats["latency"][name]``: call metrics nest their percentiles."""
    value = _get(stats, name)
    return _get(stats, "latency", name) if value is _MISSING else value


def _named_table(
    rows_of: Mapping[str, Any],
    first: str,
    columns: Sequence[tuple[str, str]],
    percentiles: Sequence[tuple[str, str]] = (),
) -> list[str]:
    """A table with one row per entry of ``rows_of``: its name, then ``columns`` (key, header)."""
    rows = []
    for name, stats in rows_of.items():
        row = [_cell(str(name))]
        row += [_fmt(_get(stats, key)) for key, _ in columns]
        row += [_fmt(_percentile(stats, key)) for key, _ in percentiles]
        rows.append(row)
    header = [first, *(h for _, h in columns), *(h for _, h in percentiles)]
    return _table(header, rows, "l" + "r" * (len(header) - 1))


def _latency_section(metrics: Mapping[str, Any]) -> list[str]:
    command = _section(metrics, "latency.command")
    accepted = _section(metrics, "latency.command_accepted")
    if not command and not accepted:
        return []
    out = ["## Latency", ""]
    period = _lookup(metrics, "driver.period_ms")
    if command:
        text = (
            "*Command latency* is the time from the operator issuing a command to the servo "
            "receiving the new goal: the driver writes goals once a cycle, so it is quantised "
            "to the driver's period"
        )
        if period is not _MISSING and period is not None:
            text += f" ({_fmt(period)} ms)"
        out.append(text + ".")
    if accepted:
        out.append(
            "*Command accepted* is the time from the operator issuing a command to its reply "
            "reaching the operator: the command was accepted, whether or not the servo has it yet."
        )
    out.append("")
    rows = []
    for label, key, stats in (
        ("Command (reached the servo)", "latency.command", command),
        ("Command accepted (reply to the operator)", "latency.command_accepted", accepted),
    ):
        if stats:
            rows.append(
                [label]
                + [_fmt(_get(stats, k)) for k in ("count", "p50_ms", "p95_ms", "p99_ms", "max_ms")]
                + [f"`{key}`"]
            )
    out += _table(
        ["Latency", "Count", "p50 (ms)", "p95 (ms)", "p99 (ms)", "max (ms)", "Metric"], rows, "lrrrrrl"
    )
    out.append("")
    return out


def _traffic_sections(metrics: Mapping[str, Any], failures: Sequence[tuple[str, str]]) -> list[str]:
    """The sections on calls, breakers, discovery, event topics, services and their failures."""
    out: list[str] = []
    calls = _section(metrics, "calls")
    if calls:
        out += ["## Calls", ""]
        columns = [
            ("calls", "Calls"),
            ("errors", "Errors"),
            ("attempts", "Attempts"),
            ("retries", "Retries"),
            ("rejected", "Rejected"),
            ("timeouts", "Timeouts"),
        ]
        out += _named_table(calls, "Call", columns, [("p50_ms", "p50 (ms)"), ("p99_ms", "p99 (ms)")])
        out.append("")
    breakers = _section(metrics, "breakers")
    if breakers:
        out += ["## Breakers", ""]
        columns = [
            ("opened", "Opened"),
            ("not_permitted", "Not permitted"),
            ("seconds_not_closed", "Not closed (s)"),
        ]
        out += _named_table(breakers, "Breaker", columns)
        out.append("")
    discovery = _section(metrics, "discovery")
    if discovery:
        counters = [[_cell(str(k)), _fmt(v)] for k, v in discovery.items() if not isinstance(v, Mapping)]
        per_replica = _get(discovery, "calls_per_replica")
        per_replica = per_replica if isinstance(per_replica, Mapping) else {}
        if counters or per_replica:
            out += ["## Discovery", ""]
        if counters:
            out += _table(["Counter", "Value"], counters, "lr")
            out.append("")
        if per_replica:
            rows = [[_cell(str(k)), _fmt(v)] for k, v in _flat_counts(per_replica)]
            out += _table(["Replica", "Calls"], rows, "lr")
            out.append("")
    events = _section(metrics, "events")
    if events:
        present = {str(k) for stats in events.values() if isinstance(stats, Mapping) for k in stats}
        keys = [k for k in EVENT_COLUMNS if k in present] + sorted(present - set(EVENT_COLUMNS))
        out += ["## Event topics", ""]
        out += _named_table(events, "Topic", [(k, _cell(k.replace("_", " ").capitalize())) for k in keys])
        out.append("")
    services = _section(metrics, "services")
    if services:
        out += ["## Services", ""]
        columns = [
            ("handled", "Handled"),
            ("errors", "Errors"),
            ("max_queue", "Max queue"),
            ("expired", "Expired"),
            ("lost", "Lost"),
            ("failures", "Failures"),
        ]
        out += _named_table(services, "Service", columns)
        out.append("")
    if failures:
        out += [
            "## Service failures",
            "",
            "Exceptions raised inside services while they handled messages.",
            "",
        ]
        rows = [[_cell(str(service)), f"`{_cell(_clip(str(text)))}`"] for service, text in failures]
        out += _table(["Service", "Exception"], rows, "ll")
        out.append("")
    return out


def _flat_counts(tree: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``(name, value)`` of a mapping whose values may nest (names joined with ``/``)."""
    out: list[tuple[str, Any]] = []
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out += _flat_counts(v, f"{prefix}{k}/")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def _clip(text: str, limit: int = 500) -> str:
    text = text.replace("`", "'")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _key_figures(metrics: Mapping[str, Any]) -> list[list[str]]:
    """Rows of the key-figures table for the metrics present."""
    rows: list[list[str]] = []
    simple = [
        ("tracking.max_error_deg", "Max tracking error", "deg"),
        ("tracking.rms_error_deg", "RMS tracking error", "deg"),
        ("latency.command.p50_ms", "Command latency p50", "ms"),
        ("latency.command.p99_ms", "Command latency p99", "ms"),
        ("driver.deadline_misses", "Driver deadline misses", ""),
    ]
    for key, label, unit in simple:
        value = _lookup(metrics, key)
        if value is not _MISSING:
            rows.append([label, _fmt(value), unit, f"`{key}`"])
    completed = _lookup(metrics, "commands.completed")
    sent = _lookup(metrics, "commands.sent")
    if completed is not _MISSING and sent is not _MISSING:
        rows.append(
            [
                "Commands completed / sent",
                f"{_fmt(completed)} / {_fmt(sent)}",
                "",
                "`commands.completed` / `commands.sent`",
            ]
        )
    elif completed is not _MISSING:
        rows.append(["Commands completed", _fmt(completed), "", "`commands.completed`"])
    elif sent is not _MISSING:
        rows.append(["Commands sent", _fmt(sent), "", "`commands.sent`"])
    return rows


def write_report(
    run_dir: Path,
    title: str,
    metrics: Mapping[str, Any],
    assertions: Sequence[AssertionOutcome],
    images: Sequence[Path],
    extra_files: Sequence[Path] = (),
    *,
    failures: Sequence[tuple[str, str]] = (),
    incomplete: str | None = None,
    verdict: str | None = None,
) -> Path:
    """Write ``run_dir/report.md`` and return its path.

    Sections, each omitted when it has nothing to show: title; one-line verdict (PASS
    when every assertion passed, else FAIL, with counts; INCOMPLETE with `incomplete`, the
    reason a run was cut short, whatever the assertions say); assertions table; key figures
    (from ``metrics``, nested dicts or flat dotted keys, missing keys skipped); per-joint
    tracking (``metrics["tracking"]["joints"]``: joint → ``rms_error_deg``,
    ``max_error_deg``); per-link table (``metrics["links"]``: name → ``messages``,
    ``drops``, ``latency`` → ``p50_ms``/``p99_ms``/``max_ms``); latency (``metrics["latency"]``:
    ``command``, which reached the servo, and ``command_accepted``, the reply to the
    operator, explained); calls (``metrics["calls"]``: name → ``calls``, ``errors``,
    ``attempts``, ``retries``, ``rejected``, ``timeouts``, ``p50_ms``/``p99_ms`` directly or
    under ``latency``); breakers (``metrics["breakers"]``: name → ``opened``,
    ``not_permitted``, ``seconds_not_closed``); discovery (``metrics["discovery"]``
    counters, and ``calls_per_replica``: replica → calls); event topics
    (``metrics["events"]``: topic → the counters present); services
    (``metrics["services"]``: name → ``handled``, ``errors``, ``max_queue``, ``expired``,
    ``lost``, ``failures``); service failures (``failures``: (service, exception text) for
    each exception raised inside a service); embedded images and links to ``extra_files``,
    both relative to ``run_dir``. Values under keys named ``token``, ``tokens`` or
    ``clients`` are never shown. The file is written atomically.
    """
    metrics = _scrub(metrics)
    failures = [(service, text) for service, text in failures]
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    out: list[str] = [f"# {title.strip() or 'ServoTwin run'}", ""]

    n = len(assertions)
    n_failed = sum(1 for a in assertions if not a.passed)
    if verdict is not None:  # not a run with assertions (a recorded session): its own line
        out.append(verdict)
    elif incomplete is not None:
        out.append(f"**Verdict: INCOMPLETE** ({_cell(incomplete)}): the assertions below prove nothing")
    elif n == 0:
        out.append("**Verdict: PASS** (no assertions)")
    elif n_failed == 0:
        out.append(f"**Verdict: PASS** ({n}/{n} assertions passed)")
    else:
        out.append(f"**Verdict: FAIL** ({n_failed} of {n} assertions failed)")
    out.append("")

    if assertions:
        out += ["## Assertions", ""]
        rows = [[f"`{_cell(a.expression)}`", _fmt(a.measured), "✓" if a.passed else "✗"] for a in assertions]
        out += _table(["Assertion", "Measured", "Result"], rows, "lrc")
        out.append("")

    key_rows = _key_figures(metrics)
    if key_rows:
        out += ["## Key figures", ""]
        out += _table(["Figure", "Value", "Unit", "Metric"], key_rows, "lrll")
        out.append("")

    joints = _lookup(metrics, "tracking.joints")
    if isinstance(joints, Mapping) and joints:
        out += ["## Tracking per joint", ""]
        rows = []
        for name, stats in joints.items():
            stats = stats if isinstance(stats, Mapping) else {}
            rows.append(
                [
                    _cell(str(name)),
                    _fmt(stats.get("rms_error_deg", _MISSING)),
                    _fmt(stats.get("max_error_deg", _MISSING)),
                ]
            )
        out += _table(["Joint", "RMS error (deg)", "Max error (deg)"], rows, "lrr")
        out.append("")

    links = _lookup(metrics, "links")
    if isinstance(links, Mapping) and links:
        out += ["## Links", ""]
        rows = []
        for name, stats in links.items():
            stats = stats if isinstance(stats, Mapping) else {}
            lat = stats.get("latency", {})
            lat = lat if isinstance(lat, Mapping) else {}
            rows.append(
                [
                    _cell(str(name)),
                    _fmt(stats.get("messages", _MISSING)),
                    _fmt(stats.get("drops", _MISSING)),
                    _fmt(lat.get("p50_ms", _MISSING)),
                    _fmt(lat.get("p99_ms", _MISSING)),
                    _fmt(lat.get("max_ms", _MISSING)),
                ]
            )
        out += _table(["Link", "Messages", "Drops", "p50 (ms)", "p99 (ms)", "max (ms)"], rows, "lrrrrr")
        out.append("")

    out += _latency_section(metrics)
    out += _traffic_sections(metrics, failures)

    if images:
        out += ["## Plots", ""]
        for image in images:
            alt = Path(image).stem.replace("[", "(").replace("]", ")")
            out += [f"![{alt}]({_rel_link(Path(image), run_dir)})", ""]

    if extra_files:
        out += ["## Files", ""]
        for extra in extra_files:
            link = _rel_link(Path(extra), run_dir)
            out.append(f"- [{Path(extra).name}]({link})")
        out.append("")

    while out and out[-1] == "":
        out.pop()
    path = run_dir / REPORT_NAME
    write_text_atomic(path, "\n".join(out) + "\n")
    return path
