"""ServoTwin: a digital twin for servo-driven machines built as microservices.

import twin
result = twin.run(twin.load("scenarios/pan_tilt.yaml"))
result.metrics["tracking"]["max_error_deg"]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from servo_core.errors import ConfigError, TwinError

if TYPE_CHECKING:
    from twin.api import RunResult, load, run
    from twin.scenario import Scenario, ScenarioError

__all__ = ["ConfigError", "RunResult", "Scenario", "ScenarioError", "TwinError", "load", "run"]

_LAZY = {
    "RunResult": "twin.api",
    "load": "twin.api",
    "run": "twin.api",
    "Scenario": "twin.scenario",
    "ScenarioError": "twin.scenario",
}


def __getattr__(name: str) -> Any:
    # The runtime loads on first use, so that importing a light submodule (the pytest
    # plugin twin.testing.plugin, at every pytest start) does not load the simulation.
    if name not in _LAZY:
        raise AttributeError(f"module 'twin' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
