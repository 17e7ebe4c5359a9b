"""`twin emulate --out DIR`: afterwards a user sees what their code did to the emulated arm."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hw_adapters import open_bus
from twin.observe.telemetry import Telemetry

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.realtime
def test_a_recorded_session_shows_the_clients_instructions_and_the_arm_moving(tmp_path: Path) -> None:
    link, out = tmp_path / "link", tmp_path / "session"
    proc = subprocess.Popen(
        [sys.executable, "-m", "twin", "emulate", "scenarios/pan_tilt.yaml", "--protocol", "dynamixel"]
        + ["--link", str(link), "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == str(link)
        with open_bus(f"dynamixel://{link}?baud=1000000") as bus:
            bus.set_torque([1, 2], True)
            bus.write_goals({1: math.radians(40), 2: math.radians(-20)})
            time.sleep(1.5)
            states = bus.read_states([1, 2])
        assert math.degrees(states[1].position) == pytest.approx(40, abs=2)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert f"session recorded: {out / 'report.md'}" in stdout
    manifest = json.loads((out / "run.json").read_text())
    assert (manifest["status"], manifest["verdict"], manifest["clock"]) == ("complete", "RECORDED", "wall")
    session = json.loads((out / "metrics.json").read_text())["session"]
    assert session["by_instruction"]["sync_write"] >= 2 and session["by_instruction"]["sync_read"] >= 1
    assert session["bytes_in"] > 0 and session["bytes_out"] > 0
    t, goal, actual = Telemetry.from_csv(out / "telemetry.csv").arrays()
    assert len(t) > 50
    assert math.degrees(goal[-1, 0]) == pytest.approx(40, abs=0.5) and math.degrees(actual[-1, 0]) > 35
    trace = json.loads((out / "trace.json").read_text())
    names = {e["name"] for e in trace["traceEvents"] if e.get("ph") == "i"}
    assert {"sync_write", "sync_read"} <= names
    assert "Session recorded" in (out / "report.md").read_text() and (out / "tracking.png").exists()


def test_an_unwritable_out_is_refused_before_serving(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "twin", "emulate", "scenarios/pan_tilt.yaml", "--protocol", "dynamixel"]
        + ["--link", str(tmp_path / "link"), "--out", str(tmp_path / "file")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "exists and is not a directory" in done.stderr
    assert not (tmp_path / "link").exists()
