"""Tests of the traffic sections of report.md: calls, breakers, discovery, events, services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twin.observe.report import write_report

SECRET = "s3cr3t-Value-42"

METRICS: dict[str, Any] = {
    "latency": {
        "command": {"count": 40, "p50_ms": 10.0, "p95_ms": 19.0, "p99_ms": 20.0, "max_ms": 21.0},
        "command_accepted": {"count": 41, "p50_ms": 1.5, "p95_ms": 2.5, "p99_ms": 3.25, "max_ms": 4.0},
    },
    "driver": {"period_ms": 10.0},
    "calls": {
        "operator_to_gateway": {
            "calls": 41,
            "errors": 1,
            "attempts": 43,
            "retries": 2,
            "rejected": 0,
            "timeouts": 1,
            "latency": {"p50_ms": 1.5, "p99_ms": 3.25},
        },
        "my|client_to_gateway": {"calls": 5, "errors": 0, "p50_ms": 0.5, "p99_ms": 0.75},
    },
    "breakers": {"gateway_to_planner_1": {"opened": 2, "not_permitted": 17, "seconds_not_closed": 1.25}},
    "discovery": {
        "refreshes": 12,
        "stale_uses": 3,
        "calls_per_replica": {"planner#0": 20, "planner#1": 21},
        "tokens": {"operator": SECRET},
    },
    "events": {
        "joint_states": {"published": 300, "delivered": 598, "lost": 2, "dropped": 0, "held": 4},
        "alarms": {"published": 1, "delivered": 1},
    },
    "services": {
        "planner": {"handled": 41, "errors": 1, "max_queue": 3, "expired": 0, "lost": 0, "failures": 1},
        "vision|v2": {"handled": 7, "errors": 0, "max_queue": 1, "expired": 0, "lost": 0},
    },
    "gateway": {"unauthorized": 3, "token": SECRET, "clients": {"operator": {"secret": SECRET}}},
    "clients": [SECRET],
    "gateway.tokens.operator": SECRET,  # a flat dotted key
    "tokens": {"latency": {"command": {"p50_ms": SECRET}}},
}


def _lines(text: str, section: str) -> list[str]:
    """The lines of one ``## section`` of the report."""
    lines = text.splitlines()
    start = lines.index(f"## {section}") + 1
    end = next((k for k in range(start, len(lines)) if lines[k].startswith("## ")), len(lines))
    return [line for line in lines[start:end] if line]


def _report(tmp_path: Path, metrics: dict[str, Any] = METRICS, **kw: Any) -> str:
    return write_report(tmp_path, "traffic", metrics, [], [], **kw).read_text(encoding="utf-8")


def test_calls_table(tmp_path: Path) -> None:
    rows = _lines(_report(tmp_path), "Calls")
    assert rows[0] == (
        "| Call | Calls | Errors | Attempts | Retries | Rejected | Timeouts | p50 (ms) | p99 (ms) |"
    )
    assert "| operator_to_gateway | 41 | 1 | 43 | 2 | 0 | 1 | 1.5 | 3.25 |" in rows
    assert "| my\\|client_to_gateway | 5 | 0 | – | – | – | – | 0.5 | 0.75 |" in rows  # pipes escaped


def test_breakers_table(tmp_path: Path) -> None:
    rows = _lines(_report(tmp_path), "Breakers")
    assert rows[0] == "| Breaker | Opened | Not permitted | Not closed (s) |"
    assert "| gateway_to_planner_1 | 2 | 17 | 1.25 |" in rows


def test_discovery_counters_and_calls_per_replica(tmp_path: Path) -> None:
    rows = _lines(_report(tmp_path), "Discovery")
    assert "| refreshes | 12 |" in rows and "| stale_uses | 3 |" in rows
    assert "| Replica | Calls |" in rows
    assert "| planner#0 | 20 |" in rows and "| planner#1 | 21 |" in rows
    assert not any("calls_per_replica" in row or "tokens" in row for row in rows)


def test_event_topics_show_the_counters_present(tmp_path: Path) -> None:
    rows = _lines(_report(tmp_path), "Event topics")
    assert rows[0] == "| Topic | Published | Delivered | Lost | Dropped | Held |"
    assert "| joint_states | 300 | 598 | 2 | 0 | 4 |" in rows
    assert "| alarms | 1 | 1 | – | – | – |" in rows


def test_services_table(tmp_path: Path) -> None:
    rows = _lines(_report(tmp_path), "Services")
    assert rows[0] == "| Service | Handled | Errors | Max queue | Expired | Lost | Failures |"
    assert "| planner | 41 | 1 | 3 | 0 | 0 | 1 |" in rows
    assert "| vision\\|v2 | 7 | 0 | 1 | 0 | 0 | – |" in rows


def test_service_failures(tmp_path: Path) -> None:
    failures = [
        ("planner", "ZeroDivisionError: division by zero"),
        ("my|svc", "KeyError: 'a|b'\nsecond line"),
    ]
    rows = _lines(_report(tmp_path, failures=failures), "Service failures")
    assert "| planner | `ZeroDivisionError: division by zero` |" in rows
    assert "| my\\|svc | `KeyError: 'a\\|b' second line` |" in rows
    assert "## Service failures" not in _report(tmp_path)


def test_latency_note_explains_both_measures(tmp_path: Path) -> None:
    rows = _lines(_report(tmp_path), "Latency")
    text = " ".join(rows)
    assert "quantised" in text and "(10 ms)" in text  # the driver's period
    assert "reply" in text and "operator" in text
    assert "| Command (reached the servo) | 40 | 10 | 19 | 20 | 21 | `latency.command` |" in rows
    accepted = "| Command accepted (reply to the operator) | 41 | 1.5 | 2.5 | 3.25 | 4 |"
    assert f"{accepted} `latency.command_accepted` |" in rows
    only = {"latency": {"command_accepted": {"p50_ms": 1.0}}}
    rows = _lines(_report(tmp_path, only), "Latency")
    assert not any("quantised" in row for row in rows) and any("Command accepted" in row for row in rows)


def test_no_secret_ever_reaches_the_report(tmp_path: Path) -> None:
    text = _report(tmp_path, failures=[("gateway", "refused")])
    assert SECRET not in text
    assert "token" not in text.lower() and "clients" not in text.lower()


def test_sections_are_left_out_without_their_metrics(tmp_path: Path) -> None:
    text = _report(tmp_path, {"calls": {}, "events": {}, "discovery": {}})
    for section in (
        "Calls",
        "Breakers",
        "Discovery",
        "Event topics",
        "Services",
        "Latency",
        "Service failures",
    ):
        assert f"## {section}" not in text


def test_report_with_traffic_is_deterministic(tmp_path: Path) -> None:
    a = _report(tmp_path / "a", failures=[("planner", "boom")])
    b = _report(tmp_path / "b", failures=[("planner", "boom")])
    assert a == b and a.endswith("\n") and not a.endswith("\n\n")
