"""ServoTwin: a digital twin for servo-driven machines built as microservices.

import twin
result = twin.run(twin.load("scenarios/pan_tilt.yaml"))
result.metrics["tracking"]["max_error_deg"]
"""

from servo_core.errors import ConfigError, TwinError
from twin.api import RunResult, load, run
from twin.scenario import Scenario, ScenarioError

__all__ = ["ConfigError", "RunResult", "Scenario", "ScenarioError", "TwinError", "load", "run"]
