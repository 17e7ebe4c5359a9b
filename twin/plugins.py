"""Service types by registration: built-ins and other distributions' entry points alike.

A distribution adds a service type with an entry point in the group
`servotwin.services`:

    [project.entry-points."servotwin.services"]
    camera = "my_rig.camera:Camera"

A scenario names it as `type: camera`, or names any class directly with
`class: "my_rig.camera:Camera"` for quick experiments.
"""

from __future__ import annotations

import sys
from typing import Any

from servo_core.errors import ConfigError
from servo_core.plugins import Registry, import_object
from twin.services.api import Service, is_service_class
from twin.services.driver import Driver
from twin.services.gateway import Gateway
from twin.services.operator import Operator
from twin.services.planner import Planner
from twin.services.telemetry import TelemetryRecorder

__all__ = ["BUILTIN_SERVICES", "SERVICES", "add_python_path", "service_class"]

SERVICES: Registry[type[Service[Any]]] = Registry(
    "servotwin.services", "service type", check=is_service_class
)

BUILTIN_SERVICES: dict[str, type[Service[Any]]] = {
    "operator": Operator,
    "gateway": Gateway,
    "planner": Planner,
    "driver": Driver,
    "telemetry": TelemetryRecorder,
}
for _name, _cls in BUILTIN_SERVICES.items():
    SERVICES.register(_name, _cls)


def add_python_path(paths: list[str]) -> None:
    """Make the scenario's `python_path` folders importable (appended, once each)."""
    for path in paths:
        if path not in sys.path:
            sys.path.append(path)


def service_class(type_name: str | None, class_path: str | None) -> type[Service[Any]]:
    """The class a scenario's service entry names. ConfigError saying what is wrong."""
    if class_path is not None:
        obj = import_object(class_path, "service class")
        problem = is_service_class(obj)
        if problem:
            raise ConfigError(
                f"service class {class_path!r} {problem}" if problem.startswith("is ") else problem
            )
        assert isinstance(obj, type)
        return obj
    assert type_name is not None
    return SERVICES.get(type_name)
