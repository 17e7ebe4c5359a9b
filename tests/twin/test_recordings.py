"""The recording reader: every shipped file reads; malformed ones name the file and the field."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from servo_core.errors import ConfigError
from twin.recordings import RecordingError, read_recording

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / "data" / "servo-logs"
SHIPPED = sorted(LOGS.glob("*.json"))
NAME = re.compile(r"(?P<motor>xl330|sts3250)_kp(?P<kp>\d+)_(?P<trajectory>\w+)")
MODELS = {"xl330": "xl330-m288", "sts3250": "sts3250"}
VOLTS = {"xl330": 7.4, "sts3250": 12.0}


def test_the_ten_recordings_are_shipped() -> None:
    assert len(SHIPPED) == 10


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_reader_accepts_every_shipped_file(path: Path) -> None:
    rec = read_recording(path)
    m = NAME.fullmatch(path.stem)
    assert m, path.stem
    assert rec.name == path.stem
    assert rec.model == MODELS[m["motor"]]
    assert rec.kp == int(m["kp"])
    assert rec.supply_v == VOLTS[m["motor"]]
    assert rec.trajectory == m["trajectory"]
    assert rec.mass_kg > 0 and rec.length_m > 0
    n = len(rec.t)
    assert n > 100
    assert all(len(a) == n for a in (rec.goal, rec.position, rec.speed, rec.torque_on))
    assert rec.t[0] == 0.0 and np.all(np.diff(rec.t) > 0)
    assert 5.0 < rec.duration_s < 7.0
    assert all(np.isfinite(a).all() for a in (rec.goal, rec.position, rec.speed))
    if m["trajectory"] == "lift_and_drop":
        assert not rec.torque_on.all(), "the arm is dropped with the torque off"
        assert rec.torque_on[0], "it is lifted with the torque on first"
    else:
        assert rec.torque_on.all()


def _base() -> dict[str, Any]:
    """A shipped recording cut down to 20 samples (keeps these tests fast)."""
    data = json.loads((LOGS / "xl330_kp100_sin_sin.json").read_text())
    data["entries"] = data["entries"][:20]
    return data


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    def write_it(data: Any, name: str = "bad.json") -> Path:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else json.dumps(data))
        return path

    return write_it


def _problems(path: Path) -> list[str]:
    with pytest.raises(RecordingError) as info:
        read_recording(path)
    exc = info.value
    assert isinstance(exc, ConfigError)
    assert exc.problems and str(exc) == "\n".join(exc.problems)
    for line in exc.problems:
        assert line.startswith(f"{path}: "), line
    return exc.problems


def test_the_cut_down_base_reads(write: Callable[..., Path]) -> None:
    assert len(read_recording(write(_base())).t) == 20


def test_missing_top_level_field(write: Callable[..., Path]) -> None:
    data = _base()
    del data["kp"]
    path = write(data)
    assert _problems(path) == [f"{path}: kp: missing"]


def test_missing_entry_field(write: Callable[..., Path]) -> None:
    data = _base()
    del data["entries"][3]["position"]
    (line,) = _problems(write(data))
    assert "entries.3:" in line and "missing position" in line


def test_nan_position(write: Callable[..., Path]) -> None:
    data = _base()
    data["entries"][5]["position"] = math.nan
    path = write(data)
    assert "NaN" in path.read_text()
    (line,) = _problems(path)
    assert "entries.5:" in line and "position" in line and "finite" in line


def test_timestamps_going_backwards(write: Callable[..., Path]) -> None:
    data = _base()
    data["entries"][4]["timestamp"] = data["entries"][2]["timestamp"]
    (line,) = _problems(write(data))
    assert "entries.4.timestamp" in line and "does not come after" in line


def test_unknown_motor_lists_the_known_ones(write: Callable[..., Path]) -> None:
    data = _base()
    data["motor"] = "mx28"
    (line,) = _problems(write(data))
    assert "motor: unknown motor 'mx28'" in line
    known = line.split("known: ", 1)[1].split(", ")
    assert {"xl330", "sts3250", "xl330-m288"} <= set(known)


def test_not_json(write: Callable[..., Path]) -> None:
    path = write("motor: xl330\nentries: []\n", name="bad.yaml")
    (line,) = _problems(path)
    assert "not a JSON recording" in line


def test_not_an_object(write: Callable[..., Path]) -> None:
    (line,) = _problems(write([1, 2, 3]))
    assert "JSON object" in line


@pytest.mark.parametrize("entries", [[], None, "samples"])
def test_empty_or_missing_entries(write: Callable[..., Path], entries: object) -> None:
    data = _base()
    if entries is None:
        del data["entries"]
    else:
        data["entries"] = entries
    (line,) = _problems(write(data))
    assert "entries: missing or empty" in line


def test_missing_file(tmp_path: Path) -> None:
    (line,) = _problems(tmp_path / "nowhere.json")
    assert "cannot read" in line


def test_every_problem_is_listed_one_per_line(write: Callable[..., Path]) -> None:
    data = _base()
    del data["vin"]
    data["mass"] = -1
    data["entries"][1]["goal_position"] = "far"
    del data["entries"][7]["torque_enable"]
    problems = _problems(write(data))
    assert len(problems) == 4
    joined = "\n".join(problems)
    for part in (
        "vin: missing",
        "mass: must be a positive",
        "entries.1: goal_position",
        "entries.7: missing",
    ):
        assert part in joined
