"""Testing a machine with pytest, on the twin or on real servos: the `servotwin` plugin.

The plugin (`twin.testing.plugin`, loaded by pytest through the `pytest11` entry point
`servotwin`) gives the fixtures `servo_bus`, `twin_run`, `twin_scenario` and `twin_bus_url`,
the options `--twin-bus`, `--twin-scenario` and `--twin-scenarios`, the markers `hardware`
and `realtime`, and collects scenario files as tests. This package adds the helpers a test
imports: `assert_metrics(result, "tracking.max_error_deg < 2")` and `metric(result, path)`.
"""

from twin.testing.checks import assert_metrics, metric
from twin.testing.plugin import TwinRunner

__all__ = ["TwinRunner", "assert_metrics", "metric"]
