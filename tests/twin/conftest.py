"""Small scenarios built in code, written to a temporary file."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

BASE: dict[str, Any] = {
    "name": "tiny_pan_tilt",
    "seed": 3,
    "duration": 3.0,
    "plant": {
        "robot": {"urdf": "pan_tilt"},
        "servos": [
            {"id": 1, "model": "xl430-w250", "joint": "pan", "limits_deg": [-120, 120]},
            {"id": 2, "model": "xl430-w250", "joint": "tilt", "limits_deg": [-60, 60]},
        ],
    },
    "topology": {
        "nodes": [{"name": "ops"}, {"name": "robot"}],
        "services": [
            {"type": "operator", "node": "ops"},
            {"type": "gateway", "node": "robot"},
            {"type": "planner", "node": "robot"},
            {"type": "driver", "node": "robot", "rate_hz": 100},
            {"type": "telemetry", "node": "robot"},
        ],
        "links": [
            {"between": ["ops", "robot"], "latency": {"type": "lognormal", "median_ms": 2, "sigma": 0.5}}
        ],
    },
    "task": {
        "type": "waypoints",
        "steps": [
            {"at_s": 0.2, "pose": {"pan": 30, "tilt": -10}, "duration_s": 1.0},
            {"at_s": 1.5, "pose": {"pan": -20, "tilt": 10}, "duration_s": 1.0},
        ],
    },
    "assertions": ["tracking.max_error_deg < 10", "commands.failed == 0"],
    "outputs": {"plots": False},
}


def scenario_dict(**changes: Any) -> dict[str, Any]:
    """BASE with top-level sections replaced (deep copy)."""
    data = copy.deepcopy(BASE)
    data.update(copy.deepcopy(changes))
    return data


@pytest.fixture
def write_scenario(tmp_path: Path) -> Callable[..., Path]:
    def write(data: dict[str, Any] | None = None, name: str = "scenario.yaml", **changes: Any) -> Path:
        path = tmp_path / name
        path.write_text(
            yaml.safe_dump(data if data is not None else scenario_dict(**changes), sort_keys=False)
        )
        return path

    return write
