"""The servo catalogue: one YAML file per model, every value with its source.

Figures are datasheet values at the output shaft. Models are looked up by
name in the `servotwin.servo_models` registry: the built-in files register in
code; other distributions register an entry point whose object is a path to a
YAML file of the same schema, a callable returning such a path or a
`ServoSpec`, or a `ServoSpec`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml

from servo_core.errors import ConfigError
from servo_core.plugins import Registry
from servo_core.protocol import PROTOCOLS, Protocol, protocol_named

__all__ = [
    "SERVO_MODELS",
    "ServoSpec",
    "catalogue",
    "load_spec",
    "model_name",
    "parse_spec",
    "read_params",
    "servo_spec",
    "spec_with",
]


@dataclass(frozen=True)
class ServoSpec:
    """Datasheet and model parameters of one servo model (SI units unless named)."""

    name: str
    protocol: str  # a name in servo_core.protocol.PROTOCOLS
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
    # Model extensions identified from recordings (the defaults leave the model as it was).
    p_gain_scale: float = 1.0  # the firmware's position gain, relative to the vendor formula
    static_friction_nm: float = 0.0  # dry friction that holds the shaft (solved implicitly)
    stribeck_velocity_rad_s: float = 0.05  # how fast the static part fades with speed
    load_friction_ratio: float = 0.0  # dry friction that grows with the motor's torque (gearbox)
    off_brake_ratio: float = 0.0  # torque off: 0 the driver coasts, 1 it shorts the winding (brakes)
    command_latency_s: float = 0.0  # from a goal written to the position loop acting on it

    @property
    def bus_protocol(self) -> Protocol:
        """The protocol object of `protocol`."""
        return protocol_named(self.protocol)

    @property
    def no_load_speed_rad_s(self) -> float:
        return self.no_load_speed_rpm * 2.0 * math.pi / 60.0

    @property
    def rad_per_tick(self) -> float:
        return 2.0 * math.pi / self.resolution_ticks

    @property
    def winding_resistance_ohm(self) -> float:
        return self.nominal_voltage_v / self.stall_current_a


OPTIONAL = {
    "p_gain_scale": 1.0,
    "static_friction_nm": 0.0,
    "stribeck_velocity_rad_s": 0.05,
    "load_friction_ratio": 0.0,
    "off_brake_ratio": 0.0,
    "command_latency_s": 0.0,
}
"""Model fields a catalogue file may leave out, with what they default to."""
_NUMERIC = {f.name for f in fields(ServoSpec)} - {"name", "protocol"} - set(OPTIONAL)
TUNABLE = (_NUMERIC | set(OPTIONAL)) - {"model_number", "resolution_ticks", "min_voltage_v", "max_voltage_v"}
"""Fields a parameters file may override."""

# What a servo-model entry point may name.
ModelSource = str | os.PathLike[str] | Traversable | ServoSpec | Callable[[], object]


def parse_spec(text: str, origin: str) -> ServoSpec:
    """A ServoSpec from catalogue YAML text; ConfigError naming `origin` and the bad field."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: expected a mapping of fields")
    missing = ({"name", "protocol"} | _NUMERIC) - raw.keys()
    unknown = raw.keys() - ({"name", "protocol"} | _NUMERIC | set(OPTIONAL))
    if missing or unknown:
        raise ConfigError(f"{origin}: missing fields {sorted(missing)}, unknown fields {sorted(unknown)}")
    values: dict[str, object] = {"name": raw["name"], "protocol": raw["protocol"]}
    for key in sorted(_NUMERIC | (set(OPTIONAL) & raw.keys())):
        entry = raw[key]
        if not (isinstance(entry, dict) and set(entry) == {"value", "source"}):
            raise ConfigError(f"{origin}: {key}: expected {{value: ..., source: ...}}")
        if not isinstance(entry["value"], int | float) or not str(entry["source"]).strip():
            raise ConfigError(f"{origin}: {key}: value must be a number with a non-empty source")
        values[key] = entry["value"]
    if values["protocol"] not in PROTOCOLS:
        raise ConfigError(f"{origin}: protocol must be one of {', '.join(sorted(PROTOCOLS))}")
    return ServoSpec(**values)  # type: ignore[arg-type]


def load_spec(path: str | os.PathLike[str] | Traversable) -> ServoSpec:
    """The ServoSpec in a catalogue YAML file."""
    file = path if isinstance(path, Traversable) else Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read servo model file {path}: {exc}") from None
    return parse_spec(text, str(path))


def _check_source(obj: object) -> str | None:
    if isinstance(obj, str | os.PathLike | Traversable | ServoSpec) or callable(obj):
        return None
    return f"expected a path to a catalogue YAML file, a ServoSpec or a callable, got {obj!r}"


SERVO_MODELS: Registry[ModelSource] = Registry("servotwin.servo_models", "servo model", _check_source)

_BUILTIN_FOLDER = resources.files("servo_core") / "catalogue"
# Built-in file names are the model names with '_' for '-' (xl430_w250.yaml is xl430-w250).
for _entry in sorted(_BUILTIN_FOLDER.iterdir(), key=lambda p: p.name):
    if _entry.name.endswith(".yaml"):
        SERVO_MODELS.register(_entry.name.removesuffix(".yaml").replace("_", "-"), _entry)

_specs: dict[str, tuple[object, ServoSpec]] = {}


def _resolve(name: str, source: object) -> ServoSpec:
    if callable(source) and not isinstance(source, ServoSpec):
        source = source()
    if isinstance(source, ServoSpec):
        spec = source
    elif isinstance(source, str | os.PathLike | Traversable):
        spec = load_spec(source)
    else:
        raise ConfigError(f"servo model {name!r}: the plugin gave {source!r}, not a path or a ServoSpec")
    if spec.name != name:
        raise ConfigError(f"servo model {name!r} is registered with a file describing {spec.name!r}")
    return spec


def servo_spec(name: str) -> ServoSpec:
    """The catalogue entry for `name`; ConfigError listing the registered models otherwise."""
    source = SERVO_MODELS.get(name)
    cached = _specs.get(name)
    if cached is not None and cached[0] is source:
        return cached[1]
    spec = _resolve(name, source)
    _specs[name] = (source, spec)
    return spec


def catalogue() -> dict[str, ServoSpec]:
    """Every registered servo model, by name (e.g. 'xl430-w250')."""
    return {name: servo_spec(name) for name in SERVO_MODELS.names()}


def model_name(protocol: str | Protocol, model_number: int) -> str:
    """The catalogue name for a model number a servo reports, or 'unknown-<number>'."""
    wanted = protocol if isinstance(protocol, str) else protocol.name
    for spec in catalogue().values():
        if spec.protocol == wanted and spec.model_number == model_number:
            return spec.name
    return f"unknown-{model_number}"


def spec_with(spec: ServoSpec, overrides: Mapping[str, float], origin: str = "parameters") -> ServoSpec:
    """`spec` with some model parameters replaced. ConfigError naming an unknown or bad one."""
    unknown = sorted(set(overrides) - TUNABLE)
    if unknown:
        raise ConfigError(
            f"{origin}: unknown parameter(s) {', '.join(unknown)}; tunable: {', '.join(sorted(TUNABLE))}"
        )
    values: dict[str, float] = {}
    for key, value in overrides.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise ConfigError(f"{origin}: {key}: expected a non-negative number, got {value!r}")
        values[key] = value
    return replace(spec, **values)  # type: ignore[arg-type]


def read_params(path: str | os.PathLike[str]) -> ServoSpec:
    """The servo model a parameters file describes: `model:` (a catalogue name) refined by
    `params:` (see `twin identify`). ConfigError naming the file and the field."""
    origin = os.fspath(path)
    try:
        raw = yaml.safe_load(Path(origin).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{origin}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML: {exc}") from None
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("model"), str)
        or not isinstance(raw.get("params"), dict)
    ):
        raise ConfigError(f"{origin}: expected 'model: NAME' and 'params: {{field: value}}'")
    base = servo_spec(raw["model"])
    spec = spec_with(base, raw["params"], origin)
    name = raw.get("name")
    return replace(spec, name=name) if isinstance(name, str) and name else spec
