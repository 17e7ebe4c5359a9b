"""Stopping a run however it stops: torque off, the run directory written, an honest verdict."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from twin.observe.telemetry import Telemetry

from .bench_rig import ROOT, bench, start_run, wait_for

PAN_TILT = ROOT / "scenarios" / "pan_tilt.yaml"


def _manifest(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return {}


def _twin(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "twin", *args], cwd=ROOT, capture_output=True, text=True)


def _reached(run_dir: Path, t: float) -> bool:
    return _manifest(run_dir).get("t_reached_s", 0.0) >= t


@pytest.mark.realtime
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_turns_torque_off_writes_the_run_and_exits_with_its_code(tmp_path: Path, sig: int) -> None:
    out = tmp_path / "run"
    with bench(PAN_TILT, tmp_path) as rig:
        proc = start_run(
            str(PAN_TILT), "--bus", f"dynamixel://{rig.link}", "--set", "duration=60", "--out", str(out)
        )
        try:
            wait_for(lambda: _reached(out, 1.0), 60, "the run to get going")
            assert all(rig.torque().values()), "the servos are energised while the run goes"
            proc.send_signal(sig)
            assert proc.wait(timeout=30) == 128 + sig
        finally:
            if proc.poll() is None:
                proc.kill()
        assert not any(rig.torque().values()), "every servo's torque is off after the signal"
    manifest = _manifest(out)
    name = signal.Signals(sig).name
    assert manifest["status"] == "incomplete" and manifest["verdict"] == "INCOMPLETE"
    assert f"stopped by {name}" in manifest["reason"]
    assert 1.0 <= manifest["t_reached_s"] < 60
    assert "Verdict: INCOMPLETE" in (out / "report.md").read_text()
    tel = Telemetry.from_csv(out / "telemetry.csv")
    assert len(tel) > 50
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["duration_s"] == pytest.approx(manifest["t_reached_s"], abs=0.01)
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert {"kind": "torque_off", "refused": [], "servos": [1, 2]}.items() <= events[-1].items()


def test_after_sigkill_the_telemetry_is_readable_and_twin_report_rebuilds_the_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = subprocess.run(  # a finished run first: its results must not pass for the next run's
        [
            sys.executable,
            "-m",
            "twin",
            "run",
            str(PAN_TILT),
            "--set",
            "duration=1",
            "--out",
            str(out),
            "--quiet",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (out / "metrics.json").exists() and (out / "report.md").exists()
    proc = start_run(str(PAN_TILT), "--set", "duration=3600", "--out", str(out), "--quiet")
    try:
        wait_for(lambda: _reached(out, 20.0), 120, "the run to pass 20 simulated seconds")
        assert not (out / "metrics.json").exists() and not (out / "report.md").exists(), (
            "the earlier run's results are gone while the new run goes"
        )
        peek = _twin("report", str(out))
        assert peek.returncode == 2 and "a run is still writing here" in peek.stderr
        second = _twin("run", str(PAN_TILT), "--out", str(out), "--quiet")
        assert second.returncode == 2 and "another run is writing there" in second.stderr
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _manifest(out)["status"] == "running"
    tel = Telemetry.from_csv(out / "telemetry.csv")
    t, _, _ = tel.arrays()
    assert t[-1] >= 19.0, "the telemetry up to the last flush is on disk"
    rebuilt = _twin("report", str(out))
    assert rebuilt.returncode == 0, rebuilt.stderr
    manifest = _manifest(out)
    assert manifest["status"] == "incomplete" and "killed" in manifest["reason"]
    report = (out / "report.md").read_text()
    assert "Verdict: INCOMPLETE" in report and "tracking.png" in report
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tracking"]["samples"] == len(tel)
    assert metrics["duration_s"] == pytest.approx(t[-1], abs=1e-6)


def test_twin_report_on_a_folder_that_is_not_a_run_exits_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "twin", "report", str(tmp_path)], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 2 and "not a run directory" in done.stderr and "Traceback" not in done.stderr


def test_a_run_halted_by_its_failure_policy_is_incomplete_never_pass(tmp_path: Path) -> None:
    from twin.cli import main

    out = tmp_path / "run"
    code = main(
        [
            "run",
            str(PAN_TILT),
            "--quiet",
            "--out",
            str(out),
            "--set",
            "duration=3",
            "--set",
            'faults=[{"type": "servo_overheat", "servo": 2, "at_s": 1.0}]',
        ]
    )
    assert code == 1
    manifest = _manifest(out)
    assert manifest["status"] == "incomplete"
    assert "halted by the safe_stop policy after servo(s) [2] failed" in manifest["reason"]
    assert "Verdict: INCOMPLETE" in (out / "report.md").read_text()
    t, _, _ = Telemetry.from_csv(out / "telemetry.csv").arrays()
    assert t[-1] > 2.9, "telemetry goes on after the halt, to the end of the run"


@pytest.mark.realtime
def test_servos_stop_by_themselves_when_the_host_process_dies(tmp_path: Path) -> None:
    """SIGKILL leaves no chance to turn torque off: the driver armed the servos' own Bus
    Watchdog (500 ms), so they stop and refuse goals until it is cleared."""
    out = tmp_path / "run"
    with bench(PAN_TILT, tmp_path) as rig:
        proc = start_run(
            str(PAN_TILT), "--bus", f"dynamixel://{rig.link}", "--set", "duration=60", "--out", str(out)
        )
        try:
            wait_for(lambda: _reached(out, 1.0), 60, "the run to get going")
            servos = rig.plant.servos
            assert [s.read_register("bus_watchdog") for s in servos] == [25, 25], "armed: 25 x 20 ms"
            proc.kill()
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
        wait_for(lambda: all(s.watchdog_fired for s in servos), 5, "the servos' watchdogs to fire")
        assert [s.read_register("bus_watchdog") for s in servos] == [-1, -1]
        assert all(rig.torque().values()), "they hold where they are, torque on, stopped"


def test_a_run_refused_at_the_start_leaves_the_earlier_results_alone(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _twin("run", str(PAN_TILT), "--set", "duration=1", "--out", str(out), "--quiet").returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    refused = _twin("run", str(PAN_TILT), "--bus", f"dynamixel://{tmp_path}/no-such-port", "--out", str(out))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_writing_a_finished_run_gives_the_same_directory_as_the_cli(tmp_path: Path) -> None:
    import twin

    out = tmp_path / "run"
    (out).mkdir()
    (out / "robot.gif").write_bytes(b"an earlier run's")
    twin.run(twin.load(PAN_TILT, ["duration=1"]), seed=9).write(out)
    manifest = _manifest(out)
    assert (manifest["status"], manifest["verdict"], manifest["seed"]) == ("complete", "PASS", 9)
    assert not (out / "robot.gif").exists(), "nothing of an earlier run is left to pass for this one"


def test_signals_a_shell_ignores_stay_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    from twin.api import StopRequest
    from twin.cli import _stopping_on_signals

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup leaves it
    try:
        with _stopping_on_signals(StopRequest()):
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)
