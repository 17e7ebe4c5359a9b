"""Robots by registration: `servotwin.robots` maps a robot name to its URDF provider.

A provider is a `Robot` (a callable `(**params) -> URDF text` and the
parameters it takes) or a plain callable, whose keyword parameters are the
ones it takes. Built-ins register here in code; other distributions through
entry points of the group.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from servo_core.errors import ConfigError
from servo_core.plugins import Registry
from sim_models.robots.pendulum import pendulum_urdf

__all__ = ["ARM6", "PAN_TILT", "PENDULUM", "ROBOTS", "Robot", "robot_provider"]


@dataclass(frozen=True)
class Robot:
    """A URDF provider: `build(**params)` returns URDF text; `params` names what it takes."""

    build: Callable[..., str]
    params: tuple[str, ...] = ()

    def urdf_text(self, name: str, **params: float) -> str:
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            takes = ", ".join(self.params) if self.params else "none"
            raise ConfigError(
                f"robot {name!r}: unknown parameter(s) {', '.join(unknown)}; valid parameters: {takes}"
            )
        text = self.build(**params)
        if not isinstance(text, str):
            raise ConfigError(f"robot {name!r}: the provider returned {type(text).__name__}, not URDF text")
        return text


def _check(obj: object) -> str | None:
    if isinstance(obj, Robot) or callable(obj):
        return None
    return f"expected a Robot or a callable returning URDF text, got {obj!r}"


def robot_provider(obj: Robot | Callable[..., str]) -> Robot:
    """A registered object as a Robot: a plain callable takes its keyword parameters."""
    if isinstance(obj, Robot):
        return obj
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = tuple(p.name for p in inspect.signature(obj).parameters.values() if p.kind in kinds)
    return Robot(obj, params)


def _packaged(file_name: str) -> Callable[[], str]:
    def read() -> str:
        return resources.files("sim_models.robots").joinpath(file_name).read_text(encoding="utf-8")

    return read


PAN_TILT = Robot(_packaged("pan_tilt.urdf"))
ARM6 = Robot(_packaged("arm6.urdf"))
KOCH = Robot(_packaged("koch.urdf"))
PENDULUM = Robot(pendulum_urdf, ("length_m", "mass_kg", "arm_mass_kg"))

# The package's entry points name these same objects, so loading them clashes with nothing.
ROBOTS: Registry[Robot | Callable[..., str]] = Registry("servotwin.robots", "robot", _check)
ROBOTS.register("pan_tilt", PAN_TILT)
ROBOTS.register("arm6", ARM6)
ROBOTS.register("koch", KOCH)
ROBOTS.register("pendulum", PENDULUM)
