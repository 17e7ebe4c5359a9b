"""Assertions on a run's metrics, in the scenario files' syntax (`metric.path OP number`)."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["HasMetrics", "assert_metrics", "metric", "stopped_early"]


class HasMetrics(Protocol):
    """A run's result: a RunResult, or anything holding the metrics dict of one."""

    @property
    def metrics(self) -> Mapping[str, Any]: ...


def metric(result: HasMetrics, path: str) -> float:
    """The number at a dotted metric path (`driver.deadline_misses`); NaN when the run had no samples.

    LookupError, with the closest valid path, when the run has no such number.
    """
    from twin.observe.metrics import measured, numeric_paths

    try:
        return measured(result.metrics, path)
    except (KeyError, TypeError, ValueError):
        valid = numeric_paths(result.metrics)
        close = difflib.get_close_matches(path, sorted(valid), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise LookupError(f"the run has no number at {path!r}{hint}") from None


def assert_metrics(result: HasMetrics, *expressions: str) -> None:
    """Check each `metric.path OP number` against the run; one AssertionError names every one that fails.

    The syntax and the comparison are those of a scenario's `assertions:` (a NaN, a metric
    with no samples, never holds).
    """
    __tracebackhide__ = True
    from twin.scenario.assertions import parse_assertion

    if not expressions:
        raise TypeError("assert_metrics needs at least one expression, e.g. 'commands.failed == 0'")
    failed = []
    for text in expressions:
        assertion = parse_assertion(text)
        value = metric(result, assertion.path)
        if not assertion.holds(value):
            shown = "no samples" if math.isnan(value) else f"{value:g}"
            failed.append(f"{assertion}: measured {shown}")
    stopped = stopped_early(result)
    if failed:
        if stopped:
            failed.append(f"(the run stopped early: {stopped})")
        raise AssertionError("; ".join(failed))


def stopped_early(result: object) -> str:
    """Why the run did not go to its end (a bus lost, a stop request); "" when it did."""
    error = getattr(result, "error", "")
    if error:
        return str(error)
    if not getattr(result, "complete", True):
        return str(getattr(result, "reason", "")) or "the run was cut short"
    return ""
