"""Identify a servo model from recordings: fit its parameters so that replays match.

The objective is the mean position MAE of replaying every training recording on
the twin (twin.replay), so the fitted parameters mean in a scenario what they
meant in the fit. The optimiser is scipy's bounded Powell method on normalised
parameters: derivative-free (the replay error is not smooth: encoder ticks,
stiction), deterministic, and a few hundred replays suffice for a handful of
parameters. Replays of one evaluation run in a process pool.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from servo_core.catalogue import ServoSpec, servo_spec, spec_with
from servo_core.errors import ConfigError
from sim_models.servo.firmware import firmware_for
from twin.recordings import Recording
from twin.replay import replay

__all__ = [
    "FITTED",
    "IdentifyResult",
    "UNSTATED",
    "catalogue_yaml",
    "identify",
    "mean_mae",
    "measured_gain_scale",
    "params_yaml",
]

FITTED: dict[str, tuple[float, float]] = {
    "p_gain_scale": (0.05, 4.0),
    "reflected_inertia_kg_m2": (1e-5, 0.02),
    "coulomb_friction_nm": (1e-4, 0.5),
    "viscous_friction_nm_s_per_rad": (1e-5, 0.5),
    "static_friction_nm": (1e-4, 0.8),
    "stribeck_velocity_rad_s": (0.005, 2.0),
    "load_friction_ratio": (1e-4, 1.0),
    "stall_torque_nm": (0.05, 20.0),
    "no_load_speed_rpm": (10.0, 600.0),
    "off_brake_ratio": (1e-3, 1.0),
}
"""The parameters fitted, with their bounds (SI units). Searched on a log scale."""

UNSTATED: dict[str, float] = {
    "static_friction_nm": 1.0,  # x the Coulomb friction: a Stribeck peak as high again
    "load_friction_ratio": 0.1,  # a gearbox that loses 10 % of the torque it carries
    "off_brake_ratio": 0.1,  # a driver that mostly coasts with torque off
}
"""Where the search starts, and the prior sits, for terms the catalogue leaves at 0."""

PRIOR_WEIGHT_RAD = 0.002
"""How much a parameter's drift from the catalogue costs: a factor e costs this many rad of MAE."""

Progress = Callable[[int, float, float], None]  # (evaluations, this MAE, best MAE so far)


@dataclass(frozen=True)
class IdentifyResult:
    spec: ServoSpec
    params: dict[str, float]
    train_mae_rad: dict[str, float]  # per training recording, with the fitted model
    evaluations: int


def _replay_mae(args: tuple[Recording, ServoSpec]) -> float:
    recording, spec = args
    return replay(recording, spec=spec).mae_rad


def mean_mae(recordings: Sequence[Recording], spec: ServoSpec, pool: Executor | None = None) -> list[float]:
    """MAE of replaying each recording with `spec`."""
    jobs = [(r, spec) for r in recordings]
    if pool is None:
        return [_replay_mae(j) for j in jobs]
    return list(pool.map(_replay_mae, jobs))


def measured_gain_scale(recordings: Sequence[Recording], spec: ServoSpec) -> float | None:
    """The firmware's P gain relative to the model's formula, measured where the recordings
    hold the servo's present PWM (`load`): PWM = scale x formula x kp x error (ticks), fitted
    by least squares over the unsaturated torque-on samples. None without such data."""
    if spec.protocol != "dynamixel":
        return None  # Feetech's load field is not the PWM the position loop asks for
    base = firmware_for(spec.bus_protocol).gain_scale[0] * spec.p_gain_scale
    ticks = spec.resolution_ticks / (2 * math.pi)
    num = den = 0.0
    for r in recordings:
        predicted = base * r.kp * (r.goal - r.position) * ticks
        use = r.torque_on & (np.abs(r.load) > 0) & (np.abs(r.load) < 0.95 * spec.pwm_limit)
        use &= np.abs(predicted) > 3 * base * r.kp  # a few ticks of error at least
        num += float(np.sum(predicted[use] * r.load[use]))
        den += float(np.sum(predicted[use] ** 2))
    return spec.p_gain_scale * num / den if den > 0 else None


def _start(spec: ServoSpec, name: str) -> float:
    lo, hi = FITTED[name]
    value = float(getattr(spec, name))
    if value == 0.0 and name in UNSTATED:
        value = UNSTATED[name] * (spec.coulomb_friction_nm if name == "static_friction_nm" else 1.0)
    return min(max(value, lo), hi)


def identify(
    recordings: Sequence[Recording],
    model: str | None = None,
    *,
    max_evaluations: int = 400,
    workers: int = 2,
    progress: Progress | None = None,
    prior_weight_rad: float = PRIOR_WEIGHT_RAD,
) -> IdentifyResult:
    """Fit FITTED to `recordings` (all of one model), starting from the catalogue's values.

    The objective is the mean replay MAE plus a prior that holds each parameter near the
    catalogue's value: `prior_weight_rad` x the sum of squared log-ratios. Parameters the
    recordings say little about (a torque-off brake in recordings that never turn torque
    off) then stay where the datasheet put them instead of wandering off. Terms the catalogue
    leaves out (0: no static friction, say) start, and are held, at UNSTATED's typical values."""
    from scipy.optimize import minimize

    if not recordings:
        raise ConfigError("identify needs at least one recording")
    models = {r.model for r in recordings}
    name = model or (models.pop() if len(models) == 1 else "")
    if not name:
        raise ConfigError(f"the recordings are of several models ({', '.join(sorted(models))}): give --model")
    base = servo_spec(name)
    names = list(FITTED)
    gain = measured_gain_scale(recordings, base)
    if gain is not None:  # measured, not searched
        base = spec_with(base, {"p_gain_scale": gain})
        names.remove("p_gain_scale")
    lows = np.log([FITTED[n][0] for n in names])
    highs = np.log([FITTED[n][1] for n in names])
    x0 = (np.log([_start(base, n) for n in names]) - lows) / (highs - lows)
    span = highs - lows
    evaluations = 0
    best = math.inf

    def spec_at(x: np.ndarray) -> ServoSpec:
        values = np.exp(lows + np.clip(x, 0.0, 1.0) * (highs - lows))
        return spec_with(base, dict(zip(names, map(float, values), strict=True)))

    def objective(x: np.ndarray, pool: Executor | None) -> float:
        nonlocal evaluations, best
        drift = (np.clip(x, 0.0, 1.0) - x0) * span  # log-ratios to the starting values
        error = float(np.mean(mean_mae(recordings, spec_at(x), pool)))
        error += prior_weight_rad * float(np.sum(drift * drift))
        evaluations += 1
        best = min(best, error)
        if progress is not None:
            progress(evaluations, error, best)
        return error

    pool: Any = ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        fit = minimize(
            objective,
            x0,
            args=(pool,),
            method="Powell",
            bounds=[(0.0, 1.0)] * len(names),
            options={"maxfev": max_evaluations, "xtol": 1e-3, "ftol": 1e-4},
        )
        spec = spec_at(fit.x)
        maes = mean_mae(recordings, spec, pool)
    finally:
        if pool is not None:
            pool.shutdown()
    params = {n: float(getattr(spec, n)) for n in [*names, "p_gain_scale"]}
    return IdentifyResult(
        spec=dataclasses.replace(spec, name=f"{base.name}-identified"),
        params=params,
        train_mae_rad={r.name: m for r, m in zip(recordings, maes, strict=True)},
        evaluations=evaluations,
    )


def params_yaml(result: IdentifyResult, model: str, holdout: dict[str, float]) -> str:
    """The parameters file `twin identify` writes: what scenarios (`plant.servos[*].params`),
    `twin replay --params` and `sim://` read, with where the values came from."""
    import yaml

    doc = {
        "model": model,
        "name": result.spec.name,
        "params": {k: float(f"{v:.6g}") for k, v in sorted(result.params.items())},
        "provenance": {
            "fitted_by": "twin identify (scipy Powell on the mean replay MAE)",
            "evaluations": result.evaluations,
            "fitted_on_mae_rad": {k: round(v, 5) for k, v in sorted(result.train_mae_rad.items())},
            "held_out_mae_rad": {k: round(v, 5) for k, v in sorted(holdout.items())},
        },
    }
    return "# Servo model parameters identified from recordings.\n" + yaml.safe_dump(doc, sort_keys=False)


def catalogue_yaml(result: IdentifyResult, model: str, name: str, how: str) -> str:
    """A whole catalogue file for the identified model, registered as `name`: the base
    model's values and sources, with each fitted value's source saying how it was found."""
    import yaml

    from servo_core.catalogue import SERVO_MODELS

    source = SERVO_MODELS.get(model)
    if not hasattr(source, "read_text"):
        raise ConfigError(f"{model} is not a catalogue file: cannot derive a variant from it")
    raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    raw["name"] = name
    for key, value in sorted(result.params.items()):
        raw[key] = {"value": float(f"{value:.6g}"), "source": f"identified: {how}"}
    header = f"# {name}: {model} identified from recordings ({how}).\n"
    return header + yaml.safe_dump(raw, sort_keys=False, width=200)
