"""Built-in robot descriptions (URDF) and a small, pybullet-free URDF reader.

Built-ins: ``pan_tilt`` (two Dynamixel XL430), ``arm6`` (six Feetech STS3215,
SO-100 style) and ``pendulum`` (one servo, generated for any length and mass).
All are meant to be loaded with a fixed base. Units throughout: m, kg, rad.
Robots are looked up by name in the `servotwin.robots` registry
(`sim_models.robots.registry`), which other distributions extend.
"""

import math
import os
import xml.etree.ElementTree as ET

from servo_core.errors import ConfigError
from servo_core.files import InputFileError, read_input_file
from sim_models.robots.pendulum import pendulum_urdf
from sim_models.robots.registry import ROBOTS, Robot, robot_provider

BUILTIN_ROBOTS: tuple[str, ...] = ("pan_tilt", "arm6", "pendulum")

__all__ = [
    "BUILTIN_ROBOTS",
    "ROBOTS",
    "Robot",
    "actuated_joints",
    "pendulum_urdf",
    "robot_links",
    "robot_names",
    "robot_urdf_text",
]


def robot_names() -> list[str]:
    """Every registered robot name, sorted."""
    return ROBOTS.names()


def _looks_like_path(name: str) -> bool:
    return "/" in name or os.sep in name or name.endswith(".urdf")


def robot_urdf_text(name: str | os.PathLike[str], **params: float) -> str:
    """URDF text of registered robot `name`, or of the URDF file at path `name`.

    Of the built-ins only ``pendulum`` takes parameters (``length_m`` in m,
    ``mass_kg`` and ``arm_mass_kg`` in kg). A name that is not registered and
    contains '/' or ends in '.urdf' is read as a file path, with no
    parameters. Raises ConfigError for an unknown name (listing the registered ones),
    an unknown parameter, a bad parameter value, a missing/unreadable file, one larger
    than `servo_core.files.MAX_INPUT_FILE_BYTES` (the limit of scenario files) or
    a file with a DOCTYPE/ENTITY declaration.
    """
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise ConfigError(f"robot name must be a string or a path, got {name!r}")
    if name in ROBOTS:
        return robot_provider(ROBOTS.get(name)).urdf_text(name, **params)
    if not _looks_like_path(name):
        raise ConfigError(
            f"unknown robot {name!r}; registered: {', '.join(ROBOTS.names())} "
            "(or give a path to a .urdf file)"
        )
    if params:
        raise ConfigError(f"robot file {name!r} takes no parameters, got {', '.join(sorted(params))}")
    try:
        raw = read_input_file(name)
    except InputFileError as exc:
        raise ConfigError(f"robot file {name}: {exc.reason}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"robot file {name}: file is not UTF-8 text (byte 0x{raw[exc.start]:02x})"
        ) from None
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


def robot_links(urdf_text: str) -> list[str]:
    """The names of a URDF's links, in document order (the text is checked as actuated_joints does)."""
    actuated_joints(urdf_text)
    return [str(link.get("name")) for link in ET.fromstring(urdf_text).findall("link")]


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
