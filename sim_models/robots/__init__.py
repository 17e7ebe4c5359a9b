"""Built-in robot descriptions (URDF) and a small, pybullet-free URDF reader.

Built-ins: ``pan_tilt`` (two Dynamixel XL430), ``arm6`` (six Feetech STS3215,
SO-100 style) and ``pendulum`` (one servo, generated for any length and mass).
All are meant to be loaded with a fixed base. Units throughout: m, kg, rad.
"""

import math
import os
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path

from sim_models.errors import ConfigError
from sim_models.robots.pendulum import pendulum_urdf

BUILTIN_ROBOTS: tuple[str, ...] = ("pan_tilt", "arm6", "pendulum")

_PARAMS: dict[str, tuple[str, ...]] = {
    "pan_tilt": (),
    "arm6": (),
    "pendulum": ("length_m", "mass_kg", "arm_mass_kg"),
}

__all__ = ["BUILTIN_ROBOTS", "actuated_joints", "pendulum_urdf", "robot_urdf_text"]


def _looks_like_path(name: str) -> bool:
    return "/" in name or os.sep in name or name.endswith(".urdf")


def robot_urdf_text(name: str | os.PathLike[str], **params: float) -> str:
    """URDF text of built-in robot `name`, or of the URDF file at path `name`.

    Only ``pendulum`` takes parameters (``length_m`` in m, ``mass_kg`` and
    ``arm_mass_kg`` in kg). A name containing '/' or ending in '.urdf' is read
    as a file path, with no parameters. Raises ConfigError for an unknown name,
    an unknown parameter, a bad parameter value, a missing/unreadable file or
    a file with a DOCTYPE/ENTITY declaration.
    """
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise ConfigError(f"robot name must be a string or a path, got {name!r}")
    if name in _PARAMS:
        valid = _PARAMS[name]
        unknown = sorted(set(params) - set(valid))
        if unknown:
            takes = ", ".join(valid) if valid else "none"
            raise ConfigError(
                f"robot {name!r}: unknown parameter(s) {', '.join(unknown)}; valid parameters: {takes}"
            )
        if name == "pendulum":
            return pendulum_urdf(**params)
        return resources.files(__name__).joinpath(f"{name}.urdf").read_text(encoding="utf-8")
    if not _looks_like_path(name):
        raise ConfigError(
            f"unknown robot {name!r}: built-in robots are {', '.join(BUILTIN_ROBOTS)} "
            "(or give a path to a .urdf file)"
        )
    if params:
        raise ConfigError(f"robot file {name!r} takes no parameters, got {', '.join(sorted(params))}")
    path = Path(name)
    if not path.is_file():
        raise ConfigError(f"URDF file not found: {name}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read URDF file {name}: {exc}") from exc
    _reject_declarations(text, name)
    return text


def _reject_declarations(text: str, where: str) -> None:
    """Refuse DOCTYPE/ENTITY declarations (no entity expansion, ever)."""
    upper = text.upper()
    if "<!DOCTYPE" in upper or "<!ENTITY" in upper:
        raise ConfigError(f"{where}: URDF must not contain DOCTYPE or ENTITY declarations")


def _limit(joint: str, limit: ET.Element | None, attr: str) -> float:
    """One limit attribute in rad; URDF defaults a missing lower/upper to 0."""
    raw = "0" if limit is None else limit.get(attr, "0")
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"joint {joint!r}: limit {attr}={raw!r} is not a number") from None
    if math.isnan(value):
        raise ConfigError(f"joint {joint!r}: limit {attr} is NaN")
    return value


def actuated_joints(urdf_text: str) -> dict[str, tuple[float, float]]:
    """Revolute and continuous joints of a URDF, in document order, with limits in rad.

    Maps each joint name to ``(lower, upper)``; a continuous joint gets
    ``(-inf, inf)``. Raises ConfigError for malformed XML, a DOCTYPE or ENTITY
    declaration (refused to rule out entity expansion), a root that is not
    ``<robot>``, a revolute joint without ``<limit>``, or lower > upper.
    """
    _reject_declarations(urdf_text, "URDF text")
    try:
        root = ET.fromstring(urdf_text)
    except ET.ParseError as exc:
        raise ConfigError(f"malformed URDF XML: {exc}") from exc
    if root.tag != "robot":
        raise ConfigError(f"URDF root element must be <robot>, got <{root.tag}>")
    joints: dict[str, tuple[float, float]] = {}
    for joint in root.findall("joint"):
        kind = joint.get("type")
        if kind not in ("revolute", "continuous"):
            continue
        name = joint.get("name")
        if not name:
            raise ConfigError("URDF has a joint without a name")
        if name in joints:
            raise ConfigError(f"URDF joint {name!r} is defined twice")
        if kind == "continuous":
            joints[name] = (-math.inf, math.inf)
            continue
        limit = joint.find("limit")
        if limit is None:
            raise ConfigError(f"revolute joint {name!r} has no <limit>")
        lower, upper = _limit(name, limit, "lower"), _limit(name, limit, "upper")
        if lower > upper:
            raise ConfigError(f"joint {name!r}: lower limit {lower} > upper limit {upper}")
        joints[name] = (lower, upper)
    return joints
