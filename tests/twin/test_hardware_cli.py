"""The hardware side of the CLI against the emulator: twin emulate, twin scan, twin run --bus."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from twin.cli import main

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.realtime  # every test here drives the emulator on the wall clock


@pytest.fixture
def emulate(tmp_path: Path) -> Iterator:
    procs: list[subprocess.Popen] = []

    def start(scenario: str, protocol: str) -> tuple[subprocess.Popen, Path]:
        link = tmp_path / f"{protocol}-link"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "twin",
                "emulate",
                str(ROOT / scenario),
                "--protocol",
                protocol,
                "--link",
                str(link),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        procs.append(proc)
        printed = proc.stdout.readline().strip()  # printed once the link is ready
        assert printed == str(link), proc.stderr.read() if proc.poll() is not None else printed
        return proc, link

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_emulate_serves_until_a_signal_then_exits_0_and_removes_its_link(emulate, sig) -> None:
    proc, link = emulate("scenarios/pan_tilt.yaml", "dynamixel")
    assert link.is_symlink()
    proc.send_signal(sig)
    assert proc.wait(timeout=10) == 0
    assert not link.exists() and not link.is_symlink()


def test_emulate_refuses_the_wrong_protocol(tmp_path: Path, capsys) -> None:
    code = main(
        [
            "emulate",
            str(ROOT / "scenarios/pan_tilt.yaml"),
            "--protocol",
            "feetech",
            "--link",
            str(tmp_path / "x"),
        ]
    )
    assert code == 2
    assert "do not speak feetech" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_scan_lists_the_emulated_servos(emulate, capsys) -> None:
    _, link = emulate("scenarios/arm6_pick_place.yaml", "feetech")
    assert main(["scan", f"feetech://{link}", "--ids", "0-8"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [r.split()[:3] for r in rows] == [[str(i), "sts3215", "777"] for i in range(1, 7)]


@pytest.mark.parametrize(
    ("scenario", "protocol"),
    [("scenarios/pan_tilt.yaml", "dynamixel"), ("scenarios/arm6_pick_place.yaml", "feetech")],
)
def test_run_against_the_emulator_on_the_wall_clock(
    emulate, tmp_path: Path, scenario: str, protocol: str
) -> None:
    _, link = emulate(scenario, protocol)
    out = tmp_path / "run"
    code = main(
        [
            "run",
            str(ROOT / scenario),
            "--bus",
            f"{protocol}://{link}",
            "--out",
            str(out),
            "--quiet",
            "--set",
            "duration=2.5",
        ]
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert code == 0, metrics
    assert metrics["commands"]["completed"] >= 1
    assert metrics["driver"]["cycles"] > 150  # 100 Hz for 2.5 s of wall clock
    assert metrics["bus"]["transactions"] > 300
    assert metrics["physics"]["steps"] == 0, "the physics ran in the emulator, not here"
    assert metrics["realtime"]["lateness"]["count"] > 0


def test_run_against_a_bus_without_the_scenarios_servos_is_bad_input(emulate, tmp_path: Path, capsys) -> None:
    _, link = emulate("scenarios/pan_tilt.yaml", "dynamixel")
    six = ["plant.servos.1.id=7"]
    code = main(
        [
            "run",
            str(ROOT / "scenarios/pan_tilt.yaml"),
            "--bus",
            f"dynamixel://{link}",
            "--quiet",
            "--out",
            str(tmp_path / "r"),
            *[a for s in six for a in ("--set", s)],
        ]
    )
    assert code == 2
    assert "servo 7 (xl430-w250, joint tilt) does not answer" in capsys.readouterr().err


def test_losing_the_port_mid_run_stops_with_a_clear_error(emulate, tmp_path: Path, capsys) -> None:
    import threading

    proc, link = emulate("scenarios/pan_tilt.yaml", "dynamixel")
    threading.Timer(1.0, proc.kill).start()  # the USB cable comes out a second into the run
    out = tmp_path / "run"
    import time

    started = time.monotonic()
    code = main(
        [
            "run",
            str(ROOT / "scenarios/pan_tilt.yaml"),
            "--bus",
            f"dynamixel://{link}",
            "--quiet",
            "--out",
            str(out),
            "--set",
            "duration=30",
        ]
    )
    took = time.monotonic() - started
    assert code == 1, "cut short: INCOMPLETE, never PASS"
    assert "INCOMPLETE: the servo bus was lost: serial port" in capsys.readouterr().err
    assert took < 10, f"the run stops at once when the port is lost, not after 30 s ({took:.1f} s)"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["driver"]["halted"] == 1, "what was measured until then is kept"
    assert metrics["duration_s"] < 5, "metrics.json says how far the run got, not the full duration"
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "incomplete" and manifest["verdict"] == "INCOMPLETE"
    assert "Verdict: INCOMPLETE" in (out / "report.md").read_text()
