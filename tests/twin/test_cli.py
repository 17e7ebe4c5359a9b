"""The command-line contract: exit codes 0 / 1 / 2, no tracebacks for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from twin.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_run_passes_with_exit_0(write_scenario: Callable[..., Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["run", str(write_scenario()), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "PASS  tracking.max_error_deg < 10" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["commands"]["completed"] == 2
    assert (out / "telemetry.csv").read_text().startswith("t_s,pan_goal_rad,pan_actual_rad")
    assert (out / "report.md").exists()


def test_failed_assertion_exits_1_naming_value_and_bound(
    write_scenario: Callable[..., Path], tmp_path: Path, capsys
) -> None:
    path = write_scenario(assertions=["tracking.max_error_deg < 0.001", "commands.failed == 0"])
    assert main(["run", str(path), "--out", str(tmp_path / "r"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "assertion failed: tracking.max_error_deg < 0.001 (measured " in err


def exit_code(argv: list[str]) -> int:
    """main()'s return value, or the code argparse exits with."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize(
    "args",
    [
        ["run", "does-not-exist.yaml"],
        ["run", "{scenario}", "--set", "duration=-1"],
        ["run", "{scenario}", "--set", "nonsense"],
        ["run", "{scenario}", "--seed", "-4"],
        ["run", "{scenario}", "--seed", "many"],
        ["validate", "{scenario}", "does-not-exist.yaml"],
        ["frobnicate"],
        ["run"],
    ],
)
def test_bad_input_exits_2_without_traceback(
    write_scenario: Callable[..., Path], tmp_path: Path, capsys, args: list[str]
) -> None:
    scenario = str(write_scenario())
    argv = [a.replace("{scenario}", scenario) for a in args]
    if argv[0] == "run":
        argv += ["--out", str(tmp_path / "r")]
    assert exit_code(argv) == 2
    err = capsys.readouterr().err
    assert err and "Traceback" not in err
    assert not (tmp_path / "r").exists(), "nothing is written for bad input"


def test_validate_reports_each_file(write_scenario: Callable[..., Path], capsys) -> None:
    good = write_scenario(name="good.yaml")
    bad = write_scenario(name="bad.yaml", duration="soon")
    assert main(["validate", str(good), str(bad)]) == 2
    captured = capsys.readouterr()
    assert f"{good}: ok" in captured.out
    assert f"{bad}:" in captured.err and "duration" in captured.err


def test_schema_prints_json(capsys) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "plant" in schema["properties"]


def test_output_path_that_is_a_file_is_bad_input(write_scenario: Callable[..., Path], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    assert main(["run", str(write_scenario()), "--out", str(blocker), "--quiet"]) == 2
    assert blocker.read_text() == "keep me"


def test_console_command_end_to_end(tmp_path: Path) -> None:
    """The real process: exit code, clean stdout, no traceback on bad input."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nduration: [1, 2\n")
    proc = subprocess.run(
        [sys.executable, "-m", "twin", "validate", str(bad)], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"{bad}:") and "Traceback" not in proc.stderr
    schema = subprocess.run(
        [sys.executable, "-m", "twin", "schema"], capture_output=True, text=True, cwd=ROOT
    )
    assert schema.returncode == 0 and json.loads(schema.stdout)["title"] == "ServoTwin scenario"


def test_render_writes_an_animation(write_scenario: Callable[..., Path], tmp_path: Path) -> None:
    from PIL import Image

    path = write_scenario(
        duration=1.0, outputs={"plots": False, "render": {"fps": 5, "width": 96, "height": 72}}
    )
    out = tmp_path / "r"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    with Image.open(out / "robot.gif") as gif:
        assert gif.size == (96, 72) and gif.n_frames >= 2
    assert "robot.gif" in (out / "report.md").read_text()


def test_services_lists_types_with_their_parameters_requests_and_metrics(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["services", "planner", "gateway"]) == 0
    out = capsys.readouterr().out
    assert (
        "param   profile: " in out and "handles 'plan'" in out and "metric  planner.refused (counter)" in out
    )
    assert "param   clients: dict (default: none)" in out


def test_services_names_an_unknown_type_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["services", "vision"]) == 2
    err = capsys.readouterr().err
    assert "unknown service type 'vision'; registered: driver, gateway, operator, planner, telemetry" in err
    assert "Traceback" not in err
