"""Replaying a real recording on the twin, and the `twin replay` command."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

import twin
from servo_core.catalogue import ServoSpec, servo_spec
from twin.cli import main
from twin.observe.replay_plot import CSV_COLUMNS, replay_csv, write_replay
from twin.recordings import Recording, read_recording
from twin.replay import ReplayResult, replay

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / "data" / "servo-logs"
SIN_SIN = LOGS / "xl330_kp100_sin_sin.json"
LIFT_AND_DROP = LOGS / "xl330_kp400_lift_and_drop.json"


@pytest.fixture(scope="module")
def recording() -> Recording:
    return read_recording(SIN_SIN)


@pytest.fixture(scope="module")
def result(recording: Recording) -> ReplayResult:
    return replay(recording)


def test_sin_sin_replays_closer_than_an_ideal_servo(recording: Recording, result: ReplayResult) -> None:
    assert result.model == "xl330-m288"
    assert result.twin.shape == recording.position.shape
    assert np.isfinite(result.twin).all()
    assert math.isfinite(result.mae_rad) and 0 < result.mae_rad < result.ideal_mae_rad
    assert result.mae_rad <= result.max_error_rad
    assert result.max_error_rad == pytest.approx(float(np.abs(result.error).max()))
    assert result.ideal_mae_rad == pytest.approx(float(np.abs(recording.goal - recording.position).mean()))
    assert 0 < result.recorded_lag_s <= 0.3 and 0 <= result.twin_lag_s <= 0.3


def test_the_twin_starts_at_the_recorded_first_position(recording: Recording, result: ReplayResult) -> None:
    assert recording.position[0] != 0.0
    assert result.twin[0] == pytest.approx(recording.position[0], abs=1e-6)


def test_replay_is_deterministic(recording: Recording, result: ReplayResult) -> None:
    again = replay(recording)
    assert np.array_equal(again.twin, result.twin)
    assert replay_csv(again) == replay_csv(result)


def test_summary_has_the_figures(result: ReplayResult) -> None:
    s = result.summary()
    assert s["recording"] == "xl330_kp100_sin_sin" and s["model"] == "xl330-m288"
    assert s["mae_rad"] == round(result.mae_rad, 6)
    assert s["mae_deg"] == pytest.approx(math.degrees(result.mae_rad), abs=1e-3)
    assert s["twin_lag_ms"] == pytest.approx(result.twin_lag_s * 1000.0)


@pytest.mark.skipif(
    "p_gain_scale" not in {f.name for f in dataclasses.fields(ServoSpec)},
    reason="ServoSpec has no p_gain_scale yet",
)
def test_a_very_stiff_twin_becomes_the_ideal_servo(recording: Recording, result: ReplayResult) -> None:
    stiff = replay(recording, spec=dataclasses.replace(servo_spec("xl330-m288"), p_gain_scale=100.0))
    follows_goal = float(np.abs(stiff.twin - recording.goal).mean())
    assert follows_goal < 0.1 * float(np.abs(result.twin - recording.goal).mean())
    assert follows_goal < 0.05
    assert stiff.twin_lag_s < result.twin_lag_s
    assert stiff.mae_rad == pytest.approx(stiff.ideal_mae_rad, rel=0.1)


def test_an_unknown_model_is_bad_input(recording: Recording) -> None:
    from servo_core.errors import ConfigError

    with pytest.raises(ConfigError, match="no-such-servo"):
        replay(recording, model="no-such-servo")


# ---- the command ----------------------------------------------------------------------------


def exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_json_prints_one_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(SIN_SIN), "--json"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 1
    figures = json.loads(lines[0])
    assert list(figures) == sorted(figures)
    assert figures["recording"] == "xl330_kp100_sin_sin" and figures["model"] == "xl330-m288"
    assert 0 < figures["mae_rad"] < figures["ideal_mae_rad"]
    assert figures["max_error_rad"] >= figures["mae_rad"]
    assert "Traceback" not in captured.err


def test_human_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(SIN_SIN), "--model", "xl330-m288"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("xl330_kp100_sin_sin")
    for part in ("xl330-m288", " rad (", "°)", "recorded ", "twin ", " ms", "ideal servo"):
        assert part in out


def test_out_writes_png_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plots"
    assert main(["replay", str(LIFT_AND_DROP), "--out", str(out), "--json"]) == 0
    json.loads(capsys.readouterr().out)
    png, csv_path = out / "xl330_kp400_lift_and_drop.png", out / "xl330_kp400_lift_and_drop.csv"
    assert sorted(p.name for p in out.iterdir()) == [csv_path.name, png.name], "no temporary files left"
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    rec = read_recording(LIFT_AND_DROP)
    with csv_path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 1 + len(rec.t)
    for row in rows[1:]:
        assert all(len(v.split(".")[1]) == 6 for v in row[:5]), row
        assert row[5] in ("0", "1")
    table = np.array([[float(v) for v in row] for row in rows[1:]])
    assert np.allclose(table[:, 0], rec.t, atol=1e-6)
    assert np.allclose(table[:, 2], rec.position, atol=1e-6)
    assert np.allclose(table[:, 4], table[:, 3] - table[:, 2], atol=3e-6)
    assert np.array_equal(table[:, 5].astype(bool), rec.torque_on)
    assert (table[:, 5] == 0).any()


def test_written_files_are_deterministic(tmp_path: Path, result: ReplayResult) -> None:
    a = write_replay(result, tmp_path / "a")
    b = write_replay(result, tmp_path / "b")
    for x, y in zip(a, b, strict=True):
        assert x.read_bytes() == y.read_bytes()


def test_params_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = tmp_path / "fit.yaml"
    params.write_text(
        "model: xl330-m288\nname: xl330-fitted\nparams: {viscous_friction_nm_s_per_rad: 0.05}\n"
    )
    assert main(["replay", str(SIN_SIN), "--params", str(params), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "xl330-fitted"


def test_model_and_params_together_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = tmp_path / "fit.yaml"
    params.write_text("model: xl330-m288\nparams: {}\n")
    argv = ["replay", str(SIN_SIN), "--model", "xl330-m288", "--params", str(params), "--json"]
    assert exit_code(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "--model" in captured.err and "--params" in captured.err and "Traceback" not in captured.err


def test_malformed_recording_exits_2_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = json.loads(SIN_SIN.read_text())
    data["entries"] = data["entries"][:20]
    del data["kp"]
    data["motor"] = "mx28"
    data["entries"][3]["position"] = math.nan
    data["entries"][6]["timestamp"] = 0.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    out = tmp_path / "out"
    assert exit_code(["replay", str(bad), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 4
    assert all(line.startswith(f"{bad}: ") for line in lines)
    assert not out.exists(), "nothing is written for bad input"


@pytest.mark.parametrize(
    "args",
    [
        ["replay", "{missing}"],
        ["replay", "{notjson}"],
        ["replay", "{recording}", "--params", "{missing}"],
        ["replay", "{recording}", "--params", "{badparams}"],
        ["replay", "{recording}", "--params", "{unknownparam}"],
        ["replay", "{recording}", "--model", "no-such-servo"],
        ["replay", "{recording}", "--out", "{notjson}"],
        ["replay"],
    ],
)
def test_bad_input_exits_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    files = {
        "{missing}": tmp_path / "missing.json",
        "{notjson}": tmp_path / "notjson.json",
        "{badparams}": tmp_path / "bad.yaml",
        "{unknownparam}": tmp_path / "unknown.yaml",
        "{recording}": SIN_SIN,
    }
    files["{notjson}"].write_text("{ not json")
    files["{badparams}"].write_text("model: [xl330]\n")
    files["{unknownparam}"].write_text("model: xl330-m288\nparams: {wobble: 1}\n")
    argv = [str(files.get(a, a)) for a in args]
    assert exit_code(argv) == 2
    captured = capsys.readouterr()
    assert captured.err and "Traceback" not in captured.err
    assert captured.out == ""


def test_a_run_directory_of_our_own_replays_with_its_scenario(tmp_path: Path) -> None:
    """A bench recorded with `twin run --bus` reads like any recording; here the bench is the
    twin itself, so its replay must agree with it closely."""
    from twin.cli import main as cli

    scenario = Path(__file__).resolve().parents[2] / "scenarios" / "pendulum_sine.yaml"
    run_dir = tmp_path / "bench"
    assert cli(["run", str(scenario), "--out", str(run_dir), "--set", "duration=2", "--quiet"]) == 0
    from twin.recordings import read_run

    recording = read_run(run_dir, twin.load(scenario))
    assert recording.model == "xl330-m288" and recording.mass_kg == pytest.approx(0.49)
    result = replay(recording)
    assert result.mae_rad < 0.01 < result.ideal_mae_rad
    assert cli(["replay", str(run_dir)]) == 2, "a run directory needs the scenario of its rig"
