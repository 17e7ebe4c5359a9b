"""Recordings of real servos, as data: the pendulum-bench JSON format, read and checked.

A recording is one servo swinging a point mass on an arm (position 0: hanging
down), sampled irregularly: the goal sent, the position and speed measured,
torque on or off, the supply voltage. Everything is SI (s, rad, rad/s, V, kg, m).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from servo_core.catalogue import catalogue
from servo_core.catalogue import servo_spec as servo_model_spec
from servo_core.errors import ConfigError

if TYPE_CHECKING:
    from twin.scenario.models import Scenario

__all__ = ["MOTORS", "Recording", "RecordingError", "read_recording", "read_run"]

MOTORS = {"xl330": "xl330-m288", "sts3250": "sts3250", "sts3215": "sts3215", "xl430": "xl430-w250"}
"""Motor names the recordings use -> catalogue models (a catalogue name is taken as it is)."""

_NUMBERS = ("kp", "vin", "mass", "length")
_ENTRY = ("timestamp", "goal_position", "position", "torque_enable")
_MAX_PROBLEMS = 10


class RecordingError(ConfigError):
    """A malformed recording; `problems` holds one line per thing wrong (file: field: what)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Recording:
    path: str
    model: str  # catalogue model
    kp: int  # the servo's own position P gain, raw control-table value
    supply_v: float
    mass_kg: float
    length_m: float
    trajectory: str
    t: np.ndarray  # s, from the first sample
    goal: np.ndarray  # rad
    position: np.ndarray  # rad
    speed: np.ndarray  # rad/s (zeros when not recorded)
    torque_on: np.ndarray  # bool
    load: np.ndarray  # the servo's raw load/PWM reading as a signed number (zeros when not recorded)

    @property
    def name(self) -> str:
        return Path(self.path).stem

    @property
    def duration_s(self) -> float:
        return float(self.t[-1])


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def read_recording(path: str | os.PathLike[str]) -> Recording:
    """Read and check one recording. RecordingError listing what is wrong (file, field)."""
    name = os.fspath(path)
    try:
        data = json.loads(Path(name).read_text(encoding="utf-8"))
    except OSError as exc:
        raise RecordingError([f"{name}: cannot read: {exc.strerror or exc}"]) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordingError([f"{name}: not a JSON recording: {exc}"]) from None
    if not isinstance(data, dict):
        raise RecordingError([f"{name}: a recording is a JSON object with 'motor', 'kp', ..., 'entries'"])
    problems: list[str] = []
    if "motor" not in data:
        problems.append(f"{name}: motor: missing")
    elif not isinstance(data["motor"], str):
        problems.append(f"{name}: motor: expected text, got {data['motor']!r}")
    for key in _NUMBERS:
        if key not in data:
            problems.append(f"{name}: {key}: missing")
            continue
        value = _number(data[key])
        if value is None or value <= 0:
            problems.append(f"{name}: {key}: must be a positive finite number, got {data[key]!r}")
    motor = data.get("motor")
    model = MOTORS.get(motor, motor) if isinstance(motor, str) else None
    if isinstance(motor, str) and model not in catalogue():
        known = ", ".join(sorted(set(MOTORS) | set(catalogue())))
        problems.append(f"{name}: motor: unknown motor {motor!r}; known: {known}")
    entries = data.get("entries")
    if not isinstance(entries, list) or not entries:
        problems.append(f"{name}: entries: missing or empty (a list of samples)")
        raise RecordingError(problems)
    rows: list[tuple[float, float, float, float, float, bool]] = []
    last_t = -math.inf
    for k, entry in enumerate(entries):
        if len(problems) >= _MAX_PROBLEMS:
            problems.append(f"{name}: entries: more problems not shown")
            break
        if not isinstance(entry, dict):
            problems.append(f"{name}: entries.{k}: expected an object")
            continue
        missing = [f for f in _ENTRY if f not in entry]
        if missing:
            problems.append(f"{name}: entries.{k}: missing {', '.join(missing)}")
            continue
        values = [_number(entry[f]) for f in ("timestamp", "goal_position", "position")]
        bad = [
            f for f, v in zip(("timestamp", "goal_position", "position"), values, strict=True) if v is None
        ]
        speed = _number(entry.get("speed", 0.0))
        if speed is None:
            bad.append("speed")
        if bad:
            problems.append(f"{name}: entries.{k}: {', '.join(bad)} must be finite numbers")
            continue
        t, goal, position = (v for v in values if v is not None)
        if t <= last_t:
            problems.append(f"{name}: entries.{k}.timestamp: {t:g} s does not come after {last_t:g} s")
            continue
        last_t = t
        torque = entry["torque_enable"]
        if not isinstance(torque, bool | int):
            problems.append(f"{name}: entries.{k}.torque_enable: expected true or false, got {torque!r}")
            continue
        load = _number(entry.get("load", 0)) or 0.0
        if load >= 32768:  # a 16-bit register read as unsigned: two's complement
            load -= 65536
        rows.append((t, goal, position, speed or 0.0, load, bool(torque)))
    if len(rows) < 2 and not problems:
        problems.append(f"{name}: entries: at least two samples are needed")
    if problems:
        raise RecordingError(problems)
    array = np.array([r[:5] for r in rows], dtype=float)
    assert model is not None
    return Recording(
        path=name,
        model=model,
        kp=int(data["kp"]),
        supply_v=float(data["vin"]),
        mass_kg=float(data["mass"]),
        length_m=float(data["length"]),
        trajectory=str(data.get("trajectory", "")),
        t=array[:, 0] - array[0, 0],
        goal=array[:, 1],
        position=array[:, 2],
        speed=array[:, 3],
        torque_on=np.array([r[5] for r in rows], dtype=bool),
        load=array[:, 4],
    )


def read_run(run_dir: str | os.PathLike[str], scenario: Scenario) -> Recording:
    """A run directory of the project's own (e.g. a `--bus` run on a pendulum bench) as a
    recording: its telemetry.csv with the rig its scenario describes. ConfigError when the
    scenario is not a one-servo pendulum or the telemetry does not fit it."""
    from twin.observe.telemetry import Telemetry

    folder = Path(run_dir)
    robot = scenario.plant.robot
    if robot.urdf != "pendulum" or len(scenario.plant.servos) != 1:
        raise RecordingError(
            [f"{folder}: replay and identify take one-servo pendulum rigs; {scenario.name} has {robot.urdf}"]
        )
    servo = scenario.plant.servos[0]
    tel = Telemetry.from_csv(folder / "telemetry.csv")
    if tel.joints != [servo.joint]:
        raise RecordingError(
            [f"{folder}/telemetry.csv: joints {tel.joints}, the scenario drives {servo.joint!r}"]
        )
    t, goal, actual = tel.arrays()
    if len(t) < 2:
        raise RecordingError([f"{folder}/telemetry.csv: at least two samples are needed"])
    spec = servo_model_spec(servo.model)
    params = robot.params
    return Recording(
        path=str(folder),
        model=servo.model,
        kp=spec.position_p_gain,  # the driver leaves the servo's gains at their defaults
        supply_v=servo.supply_v or spec.nominal_voltage_v,
        mass_kg=float(params.get("mass_kg", 0.5)),
        length_m=float(params.get("length_m", 0.1)),
        trajectory=scenario.name,
        t=t - t[0],
        goal=goal[:, 0],
        position=actual[:, 0],
        speed=np.zeros(len(t)),
        torque_on=np.ones(len(t), dtype=bool),  # the driver turns torque on before its first cycle
        load=np.zeros(len(t)),
    )
