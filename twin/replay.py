"""Replay a real recording on the twin: the same rig, the same goals at the same times.

The rig is the recording's pendulum (a point mass on a light arm) driven by a
virtual servo of the recorded model at the recorded supply voltage and P gain,
starting where the real arm started; torque goes on and off as recorded. The
twin's position is sampled at the recorded times and compared with what the
real servo measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from servo_core.catalogue import ServoSpec, servo_spec
from servo_core.units import rad_to_ticks
from sim_models.plant import Mount, Plant
from sim_models.robots import robot_urdf_text
from sim_models.servo.device import VirtualServo
from twin.recordings import Recording

__all__ = ["ReplayResult", "estimate_lag", "replay"]

_JOINT = "pivot"
_MAX_LAG_S = 0.3


@dataclass(frozen=True)
class ReplayResult:
    recording: Recording
    model: str
    twin: np.ndarray  # rad, the twin's position at the recorded times
    mae_rad: float
    max_error_rad: float
    recorded_lag_s: float  # how far the real arm trails the goal (torque on)
    twin_lag_s: float  # how far the twin trails it
    ideal_mae_rad: float  # an ideal servo (position = goal), for scale

    @property
    def error(self) -> np.ndarray:
        return self.twin - self.recording.position

    def summary(self) -> dict[str, float | str]:
        """The figures `twin replay --json` prints."""
        return {
            "recording": self.recording.name,
            "model": self.model,
            "mae_rad": round(self.mae_rad, 6),
            "mae_deg": round(math.degrees(self.mae_rad), 4),
            "max_error_rad": round(self.max_error_rad, 6),
            "max_error_deg": round(math.degrees(self.max_error_rad), 4),
            "recorded_lag_ms": round(self.recorded_lag_s * 1000.0, 2),
            "twin_lag_ms": round(self.twin_lag_s * 1000.0, 2),
            "ideal_mae_rad": round(self.ideal_mae_rad, 6),
        }


def replay(
    recording: Recording, model: str | None = None, *, spec: ServoSpec | None = None, dt_s: float = 0.001
) -> ReplayResult:
    """Simulate `recording` on the twin: with `spec` (e.g. from a parameters file), else the
    catalogue model `model`, else the recorded one."""
    if spec is None:
        spec = servo_spec(model or recording.model)
    model = spec.name
    servo = VirtualServo(spec, 1, recording.supply_v)
    urdf = robot_urdf_text("pendulum", length_m=recording.length_m, mass_kg=recording.mass_kg)
    plant = Plant(
        urdf,
        [Mount(_JOINT, servo, 1.0, 0.0)],
        dt=dt_s,
        initial_positions={_JOINT: float(recording.position[0])},
    )
    try:
        twin = _drive(plant, servo, recording, spec.resolution_ticks)
    finally:
        plant.close()
    error = np.abs(twin - recording.position)
    ideal = np.abs(recording.goal - recording.position)
    on = recording.torque_on
    return ReplayResult(
        recording=recording,
        model=model,
        twin=twin,
        mae_rad=float(error.mean()),
        max_error_rad=float(error.max()),
        recorded_lag_s=estimate_lag(recording.t, recording.goal, recording.position, on),
        twin_lag_s=estimate_lag(recording.t, recording.goal, twin, on),
        ideal_mae_rad=float(ideal.mean()),
    )


def _drive(plant: Plant, servo: VirtualServo, rec: Recording, resolution: int) -> np.ndarray:
    servo.write_register("position_p_gain", rec.kp)
    out = np.empty_like(rec.position)
    torque: bool | None = None
    for k, t in enumerate(rec.t):
        plant.advance_to(float(t))
        out[k] = plant.joint_positions([_JOINT])[0]
        on = bool(rec.torque_on[k])
        if on != torque:
            servo.write_register("torque_enable", int(on))
            torque = on
        servo.write_register("goal_position", rad_to_ticks(float(rec.goal[k]), resolution))
    return out


def estimate_lag(t: np.ndarray, goal: np.ndarray, position: np.ndarray, mask: np.ndarray) -> float:
    """The delay (s, within 0..0.3) that best lines the position up with the goal, over the
    samples where `mask` holds (torque on); 0 when the goal hardly moves."""
    if mask.sum() < 10 or np.ptp(goal[mask]) < 1e-3:
        return 0.0
    grid = np.arange(t[0], t[-1], 0.001)
    g = np.interp(grid, t, goal)
    p = np.interp(grid, t, position)
    m = np.interp(grid, t, mask.astype(float)) > 0.999
    best, best_err = 0.0, math.inf
    for shift in range(int(_MAX_LAG_S / 0.001) + 1):
        a, b, w = g[: len(g) - shift], p[shift:], m[shift:] & m[: len(m) - shift]
        if w.sum() < 10:
            break
        err = float(np.mean((a[w] - b[w]) ** 2))
        if err < best_err:
            best, best_err = shift * 0.001, err
    return best
