"""Scenario files as tests: the file is a collector, each of its assertions one test item.

The scenario runs once, when its first item runs; every item reads its own assertion
from that run and fails with what was measured.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from twin.testing.checks import stopped_early
from twin.testing.settings import SETTINGS

if TYPE_CHECKING:
    from _pytest._code.code import ExceptionInfo, TerminalRepr, TracebackStyle

    from twin.observe.report import AssertionOutcome
    from twin.scenario.models import Scenario
    from twin.testing.result import TwinRunResult

__all__ = ["AssertionMissed", "ScenarioAssertion", "ScenarioFile"]


class AssertionMissed(AssertionError):
    """A scenario assertion that did not hold: its expression and what was measured."""

    def __init__(self, outcome: AssertionOutcome, result: TwinRunResult) -> None:
        shown = "no samples" if math.isnan(outcome.measured) else f"{outcome.measured:g}"
        text = f"{outcome.expression}: measured {shown} ({result.scenario.name}, seed {result.seed})"
        stopped = stopped_early(result)
        if stopped:
            text += f"; the run stopped early: {stopped}"
        super().__init__(text)


def _short_error(excinfo: ExceptionInfo[BaseException]) -> str | None:
    """One line for the errors of the input or the bus; None for a bug, whose traceback matters."""
    from servo_core.errors import TwinError

    return str(excinfo.value) if isinstance(excinfo.value, TwinError) else None


class ScenarioFile(pytest.File):
    """A scenario file; loaded when collected, run (once) when its first assertion is checked."""

    _scenario: Scenario | None = None
    _outcome: TwinRunResult | BaseException | None = None

    def collect(self) -> Iterator[pytest.Item]:
        from twin.api import load

        self._scenario = load(self.path)
        names: set[str] = set()
        for k, assertion in enumerate(self._scenario.assertions):
            name = str(assertion)
            if name in names:
                name = f"{name} [{k}]"
            names.add(name)
            yield ScenarioAssertion.from_parent(self, name=name, index=k)

    def result(self) -> TwinRunResult:
        if self._outcome is None:
            assert self._scenario is not None, "collect() loads the scenario"
            try:
                self._outcome = self.config.stash[SETTINGS].run(self._scenario)
            except Exception as exc:
                self._outcome = exc
        if isinstance(self._outcome, BaseException):
            raise self._outcome
        return self._outcome

    def repr_failure(self, excinfo: ExceptionInfo[BaseException]) -> str | TerminalRepr:  # type: ignore[override]
        return _short_error(excinfo) or super().repr_failure(excinfo)


class ScenarioAssertion(pytest.Item):
    """One assertion of a scenario file: passes when it held in the scenario's run."""

    def __init__(self, *, index: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.index = index

    def runtest(self) -> None:
        parent = self.parent
        assert isinstance(parent, ScenarioFile)
        result = parent.result()
        outcome = result.assertions[self.index]
        self.user_properties.append(("measured", outcome.measured))
        if not outcome.passed or stopped_early(result):
            raise AssertionMissed(outcome, result)

    def repr_failure(
        self, excinfo: ExceptionInfo[BaseException], style: TracebackStyle | None = None
    ) -> str | TerminalRepr:
        if isinstance(excinfo.value, AssertionMissed):
            return str(excinfo.value)
        short = _short_error(excinfo)
        return f"the scenario did not run: {short}" if short else super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"{self.path.name}: {self.name}"
