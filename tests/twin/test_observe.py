"""Tests of twin.observe: telemetry CSV, plots, report and GIF capture."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from servo_core.errors import ConfigError, TwinError
from twin.observe.plots import plot_latency, plot_tracking, plot_tracking_error
from twin.observe.report import AssertionOutcome, write_report
from twin.observe.telemetry import Telemetry

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JOINTS = ["shoulder", "elbow", "wrist"]


def _telemetry(n: int = 200) -> Telemetry:
    tel = Telemetry(JOINTS)
    for i in range(n):
        t = i * 0.01
        goal = [0.5 * math.sin(t + k) for k in range(len(JOINTS))]
        actual = [g - 0.01 * math.cos(3 * t) for g in goal]
        tel.append(t, goal, actual)
    return tel


# --- telemetry -------------------------------------------------------------------------


def test_telemetry_arrays_shapes() -> None:
    tel = _telemetry(50)
    assert len(tel) == 50
    t, goal, actual = tel.arrays()
    assert t.shape == (50,)
    assert goal.shape == actual.shape == (50, 3)
    assert goal.dtype == np.float64


def test_telemetry_empty_arrays() -> None:
    t, goal, actual = Telemetry(["a", "b"]).arrays()
    assert t.shape == (0,) and goal.shape == (0, 2) and actual.shape == (0, 2)


def test_telemetry_csv_round_trip(tmp_path: Path) -> None:
    tel = _telemetry()
    path = tmp_path / "telemetry.csv"
    tel.to_csv(path)
    header = path.read_text().splitlines()[0]
    assert header == (
        "t_s,shoulder_goal_rad,shoulder_actual_rad,elbow_goal_rad,elbow_actual_rad,"
        "wrist_goal_rad,wrist_actual_rad"
    )
    back = Telemetry.from_csv(path)
    assert back.joints == JOINTS
    assert len(back) == len(tel)
    for a, b in zip(tel.arrays(), back.arrays(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # no temporary file left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["telemetry.csv"]


def test_telemetry_csv_byte_identical(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _telemetry().to_csv(a)
    _telemetry().to_csv(b)
    data = a.read_bytes()
    assert data == b.read_bytes()
    assert b"\r\n" not in data
    assert data.endswith(b"\n")


def test_telemetry_csv_no_negative_zero(tmp_path: Path) -> None:
    tel = Telemetry(["j"])
    tel.append(0.0, [-1e-9], [0.0])
    path = tmp_path / "z.csv"
    tel.to_csv(path)
    assert path.read_text().splitlines()[1] == "0.000000,0.000000,0.000000"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("", 1),
        ("time,j_goal_rad,j_actual_rad\n", 1),
        ("t_s,j_goal_rad,k_actual_rad\n", 1),
        ("t_s,j_goal_rad,j_actual_rad\n0.0,0.1,0.1\n0.01,0.2\n", 3),
        ("t_s,j_goal_rad,j_actual_rad\n0.0,0.1,0.1\n0.01,abc,0.2\n", 3),
        ("t_s,j_goal_rad,j_actual_rad\n0.0,0.1,0.1\n\n0.02,0.1,0.1\n", 3),
    ],
)
def test_telemetry_malformed_csv(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        Telemetry.from_csv(path)
    assert f"{path}:{line}:" in str(info.value)


def test_telemetry_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.csv"):
        Telemetry.from_csv(tmp_path / "nope.csv")


# --- plots -----------------------------------------------------------------------------


def _assert_png(path: Path, size: tuple[int, int] | None = None) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as im:
        im.load()
        assert im.format == "PNG"
        if size is not None:
            assert im.size == size
        assert "Software" not in im.info


def test_plot_tracking(tmp_path: Path) -> None:
    out = plot_tracking(_telemetry(), tmp_path / "tracking.png", title="demo")
    assert out == tmp_path / "tracking.png"
    _assert_png(out, (800, round(100 * 2.2 * len(JOINTS))))


def test_plot_tracking_error(tmp_path: Path) -> None:
    out = plot_tracking_error(_telemetry(), tmp_path / "error.png")
    _assert_png(out, (800, 440))


def test_plot_tracking_empty(tmp_path: Path) -> None:
    _assert_png(plot_tracking(Telemetry(["a"]), tmp_path / "t.png"))
    _assert_png(plot_tracking_error(Telemetry(["a"]), tmp_path / "e.png"))


def test_plot_latency(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    samples = {
        "command": list(rng.gamma(2.0, 3.0, 500)),
        "link ctrl--edge": list(rng.normal(2.0, 0.2, 300)),
        "empty": [],
    }
    _assert_png(plot_latency(samples, tmp_path / "latency.png", title="lat"), (800, 440))


def test_plot_latency_no_samples(tmp_path: Path) -> None:
    _assert_png(plot_latency({"command": []}, tmp_path / "a.png"), (800, 440))
    _assert_png(plot_latency({}, tmp_path / "b.png"), (800, 440))


def test_plots_deterministic(tmp_path: Path) -> None:
    a = plot_tracking(_telemetry(), tmp_path / "a.png")
    b = plot_tracking(_telemetry(), tmp_path / "b.png")
    assert a.read_bytes() == b.read_bytes()


# --- report ----------------------------------------------------------------------------

FULL_METRICS = {
    "tracking": {
        "max_error_deg": 1.25,
        "rms_error_deg": 0.4321,
        "joints": {
            "shoulder": {"rms_error_deg": 0.3, "max_error_deg": 1.25},
            "elbow": {"rms_error_deg": 0.5, "max_error_deg": 0.9},
        },
    },
    "latency": {"command": {"p50_ms": 3.5, "p99_ms": 12.0}},
    "driver": {"deadline_misses": 0},
    "commands": {"completed": 40, "sent": 41},
    "links": {
        "ctrl--edge": {
            "messages": 1200,
            "drops": 3,
            "latency": {"p50_ms": 1.0, "p99_ms": 2.5, "max_ms": 4.0},
        },
    },
}


def test_report_full(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    images = [run_dir / "tracking.png", run_dir / "latency.png"]
    extra = [run_dir / "telemetry.csv", run_dir / "metrics.json"]
    assertions = [
        AssertionOutcome("tracking.max_error_deg < 2.0", 1.25, True),
        AssertionOutcome("driver.deadline_misses == 0", 0.0, True),
        AssertionOutcome("latency.command.p99_ms < 10", 12.0, False),
    ]
    path = write_report(run_dir, "Pick and place", FULL_METRICS, assertions, images, extra)
    assert path == run_dir / "report.md"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Pick and place\n")
    assert "FAIL" in text and "1 of 3" in text
    for a in assertions:
        row = next(line for line in text.splitlines() if a.expression in line)
        assert ("✓" if a.passed else "✗") in row
    assert "| `tracking.max_error_deg < 2.0` | 1.25 | ✓ |" in text
    assert "| `latency.command.p99_ms < 10` | 12 | ✗ |" in text
    assert "![tracking](tracking.png)" in text
    assert "![latency](latency.png)" in text
    assert "(telemetry.csv)" in text and "(metrics.json)" in text
    assert str(tmp_path) not in text  # links are relative
    assert "40 / 41" in text
    assert "| shoulder | 0.3 | 1.25 |" in text
    assert "| ctrl--edge | 1200 | 3 | 1 | 2.5 | 4 |" in text
    # deterministic
    again = write_report(run_dir, "Pick and place", FULL_METRICS, assertions, images, extra)
    assert again.read_text(encoding="utf-8") == text


def test_report_pass_and_missing_metrics(tmp_path: Path) -> None:
    assertions = [AssertionOutcome("tracking.max_error_deg < 2.0", 0.5, True)]
    metrics = {"tracking": {"max_error_deg": 0.5}, "links": {}}
    text = write_report(tmp_path, "t", metrics, assertions, []).read_text(encoding="utf-8")
    assert "PASS" in text and "1/1" in text and "FAIL" not in text
    assert "Max tracking error" in text
    assert "RMS tracking error" not in text
    assert "Tracking per joint" not in text and "## Links" not in text


def test_report_empty(tmp_path: Path) -> None:
    text = write_report(tmp_path, "empty", {}, [], []).read_text(encoding="utf-8")
    assert "PASS" in text


def test_report_flat_dotted_keys_and_pipes(tmp_path: Path) -> None:
    metrics = {"tracking.max_error_deg": 3.0, "commands.sent": 5}
    assertions = [AssertionOutcome("a | b", 1.0, False)]
    text = write_report(tmp_path, "x", metrics, assertions, [tmp_path / "sub" / "p.png"])
    body = text.read_text(encoding="utf-8")
    assert "Max tracking error | 3 |" in body
    assert "Commands sent" in body
    assert "a \\| b" in body
    assert "(sub/p.png)" in body


# --- GIF -------------------------------------------------------------------------------


def test_gif_recorder(tmp_path: Path) -> None:
    pybullet = pytest.importorskip("pybullet")
    pybullet_data = pytest.importorskip("pybullet_data")
    from twin.observe.render import GifRecorder

    cid = pybullet.connect(pybullet.DIRECT)
    try:
        body = pybullet.loadURDF(str(Path(pybullet_data.getDataPath()) / "r2d2.urdf"), physicsClientId=cid)
        rec = GifRecorder(cid, body, width=160, height=120, fps=10.0)
        assert rec.frame_interval_s == pytest.approx(0.1)
        with pytest.raises(TwinError):
            rec.save(tmp_path / "empty.gif")
        for i in range(3):
            pybullet.resetBasePositionAndOrientation(
                body,
                [0.0, 0.0, 0.1 * i],
                pybullet.getQuaternionFromEuler([0.0, 0.0, 0.4 * i]),
                physicsClientId=cid,
            )
            rec.capture()
        assert len(rec) == 3
        out = rec.save(tmp_path / "run.gif")
    finally:
        pybullet.disconnect(physicsClientId=cid)
    with Image.open(out) as im:
        assert im.format == "GIF"
        assert im.n_frames == 3
        assert im.size == (160, 120)
        assert im.info.get("loop") == 0
        assert im.info.get("duration") == 100
        for k in range(3):
            im.seek(k)
            pixels = np.asarray(im.convert("RGB"))
            assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 2


def test_gif_recorder_bad_args() -> None:
    from twin.observe.render import GifRecorder

    with pytest.raises(ConfigError):
        GifRecorder(0, 0, fps=0.0)
    with pytest.raises(ConfigError):
        GifRecorder(0, 0, width=0)
