"""Same scenario + same seed = byte-identical metrics.json and telemetry.csv."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import twin

from .conftest import BASE


def _run_bytes(path: Path, out: Path, seed: int | None = None) -> tuple[bytes, bytes]:
    result = twin.run(twin.load(path), seed=seed)
    result.write(out)
    return (out / "metrics.json").read_bytes(), (out / "telemetry.csv").read_bytes()


def test_two_runs_are_byte_identical(write_scenario: Callable[..., Path], tmp_path: Path) -> None:
    # Random latency on the link and random processing times make this a real test.
    topology = {
        **BASE["topology"],
        "services": [
            {**svc, "processing": {"type": "uniform", "low_ms": 0.1, "high_ms": 3.0}}
            if svc["type"] in ("gateway", "planner")
            else svc
            for svc in BASE["topology"]["services"]
        ],
        "links": [
            {"between": ["ops", "robot"], "latency": {"type": "lognormal", "median_ms": 3, "sigma": 0.8}}
        ],
    }
    path = write_scenario(topology=topology)
    first = _run_bytes(path, tmp_path / "a")
    second = _run_bytes(path, tmp_path / "b")
    assert first == second
    third = _run_bytes(path, tmp_path / "c", seed=1234)
    assert third[0] != first[0], "another seed draws other latencies"


def test_result_api(write_scenario: Callable[..., Path]) -> None:
    result = twin.run(write_scenario())
    assert result.passed and not result.failures
    image = result.plot("tracking")
    assert image.size[0] > 100
    t, goal, actual = result.telemetry.arrays()
    assert len(t) == result.metrics["tracking"]["samples"] == result.metrics["driver"]["cycles"]


def test_a_users_own_services_run_byte_identical(tmp_path: Path) -> None:
    """The camera's noise and processing times come from its seeded rng: every file repeats."""
    path = Path(__file__).resolve().parents[2] / "scenarios" / "camera_tracking.yaml"
    scenario = twin.load(path, ["duration=2"])
    files = ("metrics.json", "telemetry.csv", "trace.json", "report.md", "topology.png")
    runs = []
    for name in ("a", "b"):
        twin.run(scenario).write(tmp_path / name)
        runs.append([(tmp_path / name / f).read_bytes() for f in files])
    assert runs[0] == runs[1]
