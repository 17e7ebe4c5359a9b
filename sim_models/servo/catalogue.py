"""The servo catalogue: one YAML file per model, every value with its source.

Figures are datasheet values at the output shaft. The motor line in
`sim_models.servo.device` is built so that the *net* output (after friction)
passes through the datasheet stall torque and no-load speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from typing import Literal

import yaml

from sim_models.errors import ConfigError

Protocol = Literal["dynamixel", "feetech"]


@dataclass(frozen=True)
class ServoSpec:
    """Datasheet and model parameters of one servo model (SI units unless named)."""

    name: str
    protocol: Protocol
    model_number: int
    gear_ratio: float
    nominal_voltage_v: float
    min_voltage_v: float
    max_voltage_v: float
    stall_torque_nm: float
    stall_current_a: float
    no_load_speed_rpm: float
    resolution_ticks: int
    backlash_deg: float
    coulomb_friction_nm: float
    viscous_friction_nm_s_per_rad: float
    reflected_inertia_kg_m2: float
    thermal_resistance_k_per_w: float
    thermal_capacity_j_per_k: float
    temperature_limit_c: float
    position_p_gain: int
    position_i_gain: int
    position_d_gain: int
    pwm_limit: int
    return_delay_us: float

    @property
    def no_load_speed_rad_s(self) -> float:
        return self.no_load_speed_rpm * 2.0 * math.pi / 60.0

    @property
    def rad_per_tick(self) -> float:
        return 2.0 * math.pi / self.resolution_ticks

    @property
    def winding_resistance_ohm(self) -> float:
        return self.nominal_voltage_v / self.stall_current_a


_NUMERIC = {f.name for f in fields(ServoSpec)} - {"name", "protocol"}


def _parse(text: str, origin: str) -> ServoSpec:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: expected a mapping of fields")
    missing = ({"name", "protocol"} | _NUMERIC) - raw.keys()
    unknown = raw.keys() - ({"name", "protocol"} | _NUMERIC)
    if missing or unknown:
        raise ConfigError(f"{origin}: missing fields {sorted(missing)}, unknown fields {sorted(unknown)}")
    values: dict[str, object] = {"name": raw["name"], "protocol": raw["protocol"]}
    for key in _NUMERIC:
        entry = raw[key]
        if not (isinstance(entry, dict) and set(entry) == {"value", "source"}):
            raise ConfigError(f"{origin}: {key}: expected {{value: ..., source: ...}}")
        if not isinstance(entry["value"], int | float) or not str(entry["source"]).strip():
            raise ConfigError(f"{origin}: {key}: value must be a number with a non-empty source")
        values[key] = entry["value"]
    if values["protocol"] not in ("dynamixel", "feetech"):
        raise ConfigError(f"{origin}: protocol must be 'dynamixel' or 'feetech'")
    return ServoSpec(**values)  # type: ignore[arg-type]


@cache
def catalogue() -> dict[str, ServoSpec]:
    """Every servo model shipped in the package, by name (e.g. 'xl430-w250')."""
    specs = {}
    folder = resources.files("sim_models.servo") / "catalogue"
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            spec = _parse(entry.read_text(encoding="utf-8"), f"catalogue/{entry.name}")
            specs[spec.name] = spec
    return specs


def servo_spec(name: str) -> ServoSpec:
    """The catalogue entry for `name`; ConfigError lists the known models otherwise."""
    specs = catalogue()
    try:
        return specs[name]
    except KeyError:
        raise ConfigError(f"unknown servo model {name!r}; known models: {', '.join(sorted(specs))}") from None


def model_name(protocol: str, model_number: int) -> str:
    """The catalogue name for a model number a servo reports, or 'unknown-<number>'."""
    for spec in catalogue().values():
        if spec.protocol == protocol and spec.model_number == model_number:
            return spec.name
    return f"unknown-{model_number}"
