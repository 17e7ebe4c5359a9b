"""A scenario asking for more work than a run can do in reasonable time is refused at validation."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from twin.cli import main
from twin.scenario import ScenarioError, budget, load_scenario
from twin.scenario.budget import (
    MAX_CONTROL_CYCLES,
    MAX_PHYSICS_STEPS,
    MAX_TELEMETRY_VALUES,
    measure_work,
)

from ..conftest import BASE, scenario_dict

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))


def problems(path: Path, sets: Sequence[str] = ()) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, sets)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_scenarios_are_far_within_the_limits(path: Path) -> None:
    work = measure_work(load_scenario(path))
    assert 0 < work.physics_steps <= MAX_PHYSICS_STEPS / 1000
    assert 0 < work.control_cycles <= MAX_CONTROL_CYCLES / 1000
    assert work.telemetry_values <= MAX_TELEMETRY_VALUES / 1000


def test_the_work_is_counted_from_duration_step_rate_and_joints(write_scenario: Callable[..., Path]) -> None:
    work = measure_work(load_scenario(write_scenario(duration=2.5)))
    # 2.5 s: 2500 steps of the default 1 ms, 250 cycles at 100 Hz, 5 values a sample (t + 2 × 2).
    assert (work.physics_steps, work.control_cycles, work.telemetry_samples) == (2500, 250, 250)
    assert work.telemetry_values == 1250
    assert (work.rate_hz, work.rate_at, work.rate_is_raised) == (
        100.0,
        ("topology", "services", 3, "rate_hz"),
        False,
    )
    no_telemetry = {**BASE["topology"], "services": BASE["topology"]["services"][:4]}
    quiet = measure_work(load_scenario(write_scenario(duration=2.5, topology=no_telemetry)))
    assert (quiet.control_cycles, quiet.telemetry_samples, quiet.telemetry_values) == (250, 0, 0)


def test_a_nanosecond_physics_step_is_refused_naming_the_override(
    write_scenario: Callable[..., Path],
) -> None:
    assert problems(write_scenario(), ["physics.dt_s=1e-9"]) == [
        "--set physics.dt_s=1e-9: 3 s at physics.dt_s = 1e-09 s is 3,000,000,000 physics steps, more than "
        "the limit of 100,000,000: raise physics.dt_s (default 0.001) or shorten duration"
    ]


def test_a_tiny_step_in_the_file_names_its_line(write_scenario: Callable[..., Path]) -> None:
    path = write_scenario(scenario_dict(physics={"dt_s": 1e-7}, duration=20.0))
    line = path.read_text().splitlines().index("  dt_s: 1.0e-07") + 1
    assert problems(path) == [
        f"{path}:{line}: physics.dt_s: 20 s at physics.dt_s = 1e-07 s is 200,000,000 physics steps, "
        "more than the limit of 100,000,000: raise physics.dt_s (default 0.001) or shorten duration"
    ]


def test_a_long_run_at_the_default_step_blames_the_duration(
    write_scenario: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(budget, "MAX_PHYSICS_STEPS", 4000)
    path = write_scenario(duration=4.0)
    assert load_scenario(path).duration == 4.0, "exactly at the limit is allowed"
    assert problems(path, ["duration=4.001"]) == [
        "--set duration=4.001: 4.001 s at physics.dt_s = 0.001 s is 4,001 physics steps, more than "
        "the limit of 4,000: raise physics.dt_s (default 0.001) or shorten duration"
    ]


def test_a_raised_control_rate_is_blamed_for_cycles_and_telemetry(
    write_scenario: Callable[..., Path],
) -> None:
    path = write_scenario()
    assert problems(path, ["duration=86400", "topology.services.3.rate_hz=2000"]) == [
        "--set topology.services.3.rate_hz=2000: driver at 2000 Hz for 86400 s runs 172,800,000 control "
        "cycles, more than the limit of 10,000,000: lower topology.services.3.rate_hz or shorten duration",
        "--set topology.services.3.rate_hz=2000: telemetry would record 172,800,000 samples of 2 joint(s), "
        "864,000,000 values (time, goal and actual per joint), more than the limit of 50,000,000: "
        "lower topology.services.3.rate_hz or shorten duration",
    ]


def test_telemetry_grows_with_the_joints(monkeypatch: pytest.MonkeyPatch) -> None:
    arm = ROOT / "scenarios" / "arm6_pick_place.yaml"
    # A day at the default 100 Hz: within the cycle limit, but six joints make 13 values a sample.
    assert problems(arm, ["duration=86400"]) == [
        "--set duration=86400: telemetry would record 8,640,000 samples of 6 joint(s), 112,320,000 values "
        "(time, goal and actual per joint), more than the limit of 50,000,000: "
        "lower topology.services.3.rate_hz or shorten duration"
    ]
    pan_tilt = load_scenario(ROOT / "scenarios" / "pan_tilt.yaml", ["duration=86400"])
    assert measure_work(pan_tilt).telemetry_values == 43_200_000  # two joints: within


def test_twin_run_refuses_at_once_and_writes_nothing(
    write_scenario: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.perf_counter()
    argv = ["run", str(write_scenario()), "--out", str(tmp_path / "r"), "--set", "physics.dt_s=1e-9"]
    assert main(argv) == 2
    assert time.perf_counter() - started < 30
    err = capsys.readouterr().err
    assert err.startswith(
        "--set physics.dt_s=1e-9: 3 s at physics.dt_s = 1e-09 s is 3,000,000,000 physics steps"
    )
    assert "Traceback" not in err and not (tmp_path / "r").exists()
