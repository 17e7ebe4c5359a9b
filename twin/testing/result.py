"""What `twin_run` returns: a RunResult with the metric helpers as methods."""

from __future__ import annotations

from dataclasses import fields

from twin.api import RunResult
from twin.testing.checks import assert_metrics, metric

__all__ = ["TwinRunResult"]


class TwinRunResult(RunResult):
    """A RunResult plus `metric(path)` and `assert_metrics(*expressions)`."""

    @classmethod
    def of(cls, result: RunResult) -> TwinRunResult:
        made = cls(**{f.name: getattr(result, f.name) for f in fields(result) if f.init})
        for f in fields(result):
            if not f.init:
                setattr(made, f.name, getattr(result, f.name))
        return made

    def metric(self, path: str) -> float:
        """The number at a dotted metric path; see `twin.testing.metric`."""
        return metric(self, path)

    def assert_metrics(self, *expressions: str) -> None:
        """Check `metric.path OP number` expressions; see `twin.testing.assert_metrics`."""
        __tracebackhide__ = True
        assert_metrics(self, *expressions)
