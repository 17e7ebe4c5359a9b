"""The shadow twin: the twin beside the real servos raises an alarm when they part, and only then."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from twin.cli import main
from twin.shadow import DivergenceMonitor, ShadowSettings

from .bench_rig import ROOT, bench

PAN_TILT = ROOT / "scenarios" / "pan_tilt.yaml"


def test_the_monitor_alarms_once_per_episode_above_the_threshold_for_the_window() -> None:
    m = DivergenceMonitor(ShadowSettings(threshold_rad=0.1, window_s=0.2))
    fired = [t for t in (0.0, 0.1, 0.2, 0.29, 0.31, 0.4, 0.5) if m.update(t, 0.5 if t >= 0.1 else 0.0)]
    assert fired == [0.31], "above the threshold from 0.1 s: the alarm once the window (0.2 s) has passed"
    assert not m.update(0.6, 0.05) and not m.update(0.7, -0.5)
    assert m.update(0.95, -0.5), "back below, then above again: a new episode, a new alarm"
    assert m.alarms == [0.31, 0.95]


def _shadow_run(tmp_path: Path, emulated: Path, *sets: str) -> tuple[int, dict, str]:
    out = tmp_path / "run"
    with bench(emulated, tmp_path, faults=True) as rig:
        args = [
            "run",
            str(PAN_TILT),
            "--bus",
            f"dynamixel://{rig.link}",
            "--shadow",
            "--quiet",
            "--out",
            str(out),
        ]
        code = main([*args, "--set", "duration=4", *[a for s in sets for a in ("--set", s)]])
        log = list(rig.fault_log)
    return code, json.loads((out / "metrics.json").read_text()), "\n".join(log)


@pytest.mark.realtime
def test_a_healthy_bench_raises_no_shadow_alarm(tmp_path: Path) -> None:
    code, metrics, _ = _shadow_run(tmp_path, PAN_TILT)
    shadow = metrics["shadow"]
    assert shadow["alarms"] == 0 and shadow["samples"] > 200
    for joint in shadow["joints"].values():
        assert joint["max_delta_deg"] < 2.0, "the twin tracks the (emulated) hardware closely"
    assert (tmp_path / "run" / "shadow.png").exists()
    assert "shadow.png" in (tmp_path / "run" / "report.md").read_text()
    assert code == 0


@pytest.mark.realtime
def test_an_overload_on_the_hardware_side_fires_the_shadow_alarm(tmp_path: Path) -> None:
    scenario = yaml.safe_load(PAN_TILT.read_text())
    scenario["faults"] = [{"type": "servo_overload", "servo": 1, "torque_nm": 3.0, "at_s": 1.5}]
    emulated = tmp_path / "overloaded.yaml"
    emulated.write_text(yaml.safe_dump(scenario))
    code, metrics, fault_log = _shadow_run(tmp_path, emulated)
    assert "servo_overload on servo 1" in fault_log, "twin emulate's side played the fault"
    shadow = metrics["shadow"]
    assert shadow["alarms"] >= 1 and shadow["joints"]["pan"]["alarms"] >= 1
    assert shadow["joints"]["tilt"]["alarms"] == 0, "the healthy joint stays quiet"
    assert 1.5 < shadow["first_alarm_s"] < 3.0
    assert shadow["joints"]["pan"]["max_delta_deg"] > math.degrees(0.5)
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert any(e["kind"] == "alarm" and e["what"] == "shadow_divergence" and e["servo"] == 1 for e in events)
    assert metrics["events"]["alarms"]["published"] >= 1, "the alarm went out on the event bus"
    assert code == 1


def test_shadow_without_a_bus_is_refused_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(PAN_TILT), "--shadow", "--quiet"]) == 2
    assert "--shadow runs the twin beside real servos: give --bus" in capsys.readouterr().err
