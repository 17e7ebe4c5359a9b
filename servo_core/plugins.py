"""Registries that built-ins and plugins fill the same way.

A registry maps names to objects (service classes, robot providers, servo
model files, bus openers). Built-ins register in code; other distributions
register through Python entry points of the registry's group, loaded once, on
first use. Problems while loading (a plugin that raises, two plugins claiming
one name) are collected and raised together as one PluginError, one line per
problem naming the plugin's distribution.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar

from servo_core.errors import ConfigError

__all__ = ["PluginError", "Registry", "import_object"]

T = TypeVar("T")


class PluginError(ConfigError):
    """A plugin could not be loaded or registered. `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _distribution(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "an unknown distribution"
    return f"distribution {dist.name} {dist.version}"


def import_object(path: str, what: str = "object") -> object:
    """The object a `package.module:Name` path names. ConfigError saying what failed."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{what} path {path!r} must look like 'package.module:Name'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's input problem
        raise ConfigError(
            f"{what} path {path!r}: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None
    obj: object = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{what} path {path!r}: module {module_name!r} has no {attr!r}") from None
    return obj


class Registry(Generic[T]):
    """Named objects of one kind: `what` names the kind in messages, `group` the entry points.

    `check` vets an object before it is registered; it returns a problem (a
    string) or None.
    """

    def __init__(self, group: str, what: str, check: Callable[[object], str | None] | None = None) -> None:
        self.group = group
        self.what = what
        self._check = check
        self._items: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._loaded = False

    def register(self, name: str, obj: T, origin: str = "built-in") -> T:
        """Add `obj` under `name`. PluginError when the name is taken or the object fails the check."""
        problem = self._problem(name, obj, origin)
        if problem:
            raise PluginError([problem])
        self._items[name] = obj
        self._origins[name] = origin
        return obj

    def unregister(self, name: str) -> None:
        """Remove a name (for tests and notebooks that register temporarily)."""
        self._items.pop(name, None)
        self._origins.pop(name, None)

    def _problem(self, name: str, obj: object, origin: str) -> str | None:
        if name in self._items and self._items[name] is not obj:
            return f"{self.what} {name!r} is claimed twice: by {self._origins[name]} and by {origin}"
        if self._check is not None:
            problem = self._check(obj)
            if problem:
                return f"{self.what} {name!r} from {origin}: {problem}"
        return None

    def load_plugins(self) -> None:
        """Load the entry points of this registry's group, once. PluginError lists every problem."""
        if self._loaded:
            return
        self._loaded = True
        problems = []
        for ep in sorted(entry_points(group=self.group), key=lambda e: e.name):
            origin = f"{_distribution(ep)} (entry point {ep.name!r} in group {self.group})"
            try:
                obj = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, not fatal here
                problems.append(
                    f"{self.what} plugin from {origin} failed to load: {type(exc).__name__}: {exc}"
                )
                continue
            problem = self._problem(ep.name, obj, origin)
            if problem:
                problems.append(problem)
                continue
            self._items[ep.name] = obj
            self._origins[ep.name] = origin
        if problems:
            raise PluginError(problems)

    def get(self, name: str) -> T:
        """The object registered as `name`. ConfigError listing the registered names otherwise."""
        self.load_plugins()
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.what} {name!r}; registered: {', '.join(self.names())}"
            ) from None

    def __contains__(self, name: object) -> bool:
        self.load_plugins()
        return name in self._items

    def names(self) -> list[str]:
        self.load_plugins()
        return sorted(self._items)

    def origin(self, name: str) -> str:
        self.load_plugins()
        return self._origins[name]
