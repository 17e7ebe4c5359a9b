"""Scenario files: models, loading with precise errors, cross-field checks.

`twin.scenario.models` imports nothing of the runtime, so the assembly may use
it; the loading functions here import the checks (which use the assembly's
conversions) only when called.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from twin.scenario.models import Scenario
from twin.scenario.problems import Problem, ScenarioError, ScenarioWarning

__all__ = ["Problem", "Scenario", "ScenarioError", "ScenarioWarning", "load_scenario", "scenario_schema"]


def load_scenario(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> Scenario:
    """Read, override (`path=value`), validate and cross-check a scenario file.

    Raises ScenarioError with one Problem per thing wrong (file, line, field).
    """
    from twin.scenario.checks import check_scenario, scenario_notes
    from twin.scenario.loader import load_model

    return load_model(Scenario, path, overrides, checks=check_scenario, notes=scenario_notes)  # type: ignore[arg-type]


def scenario_schema() -> dict[str, Any]:
    """JSON Schema of scenario files, for editors."""
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ServoTwin scenario"
    return schema
