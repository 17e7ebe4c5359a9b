"""Command-line overrides: `--set path=value` applied before validation."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from twin.scenario.problems import OVERRIDE_FILE, FieldPath, Problem, ScenarioError, dotted
from twin.scenario.yaml_reader import DataBuilder, compose, short_repr

__all__ = ["apply_overrides", "apply_overrides_tracked"]


class _OverrideError(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _parse_value(text: str, where: str) -> Any:
    """An override's value, read as YAML with the same safe rules as files."""
    try:
        node = compose(text, OVERRIDE_FILE)
    except ScenarioError as exc:
        raise _OverrideError(where, exc.problems[0].message) from None
    if node is None:
        return None
    builder = DataBuilder(OVERRIDE_FILE)
    value = builder.build_document(node)
    if builder.problems:
        raise _OverrideError(where, "; ".join(p.message for p in builder.problems))
    return value


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    kind = {bool: "boolean", int: "number", float: "number", str: "string"}.get(type(value))
    return f"the {kind or type(value).__name__} {short_repr(value)}"


def _child_key(container: Any, segment: str, done: FieldPath, where: str, file: str) -> str | int:
    """The key or index ``segment`` names in ``container``; :class:`_OverrideError` if none."""
    place = dotted(done) or "the top level"
    if isinstance(container, dict):
        return segment
    if not isinstance(container, list):
        message = f"cannot go into {place}: it is {_describe(container)}, not a mapping or list"
        raise _OverrideError(where, message)
    if not (segment.isascii() and segment.isdigit()):
        raise _OverrideError(where, f"{place} is a list; expected an index, not {segment!r}")
    index = int(segment)
    if index >= len(container):
        count = f"{len(container)} item" + ("" if len(container) == 1 else "s")
        raise _OverrideError(where, f"index {index} is out of range: {place} has {count} in {file}")
    return index


def _apply_one(data: dict[str, Any], item: str, file: str) -> FieldPath:
    """Apply one ``path=value`` to ``data`` in place; return the path of what it set or made."""
    raw_path, equals, raw_value = item.partition("=")
    where = raw_path.strip()
    if not equals or not where:
        raise _OverrideError("", "expected path=value")
    segments = [segment.strip() for segment in where.split(".")]
    if "" in segments:
        raise _OverrideError(where, "empty segment in the path")
    value = _parse_value(raw_value, where)
    container: Any = data
    done: FieldPath = ()
    created: FieldPath | None = None
    for segment in segments[:-1]:
        key = _child_key(container, segment, done, where, file)
        if isinstance(container, dict) and key not in container:
            container[key] = {}  # a new section; the model judges it
            created = created or (*done, key)
        container = container[key]
        done = (*done, key)
    key = _child_key(container, segments[-1], done, where, file)
    container[key] = value
    return created or (*done, key)


def apply_overrides_tracked(
    data: Mapping[str, Any], sets: Sequence[str], file: str
) -> tuple[dict[str, Any], dict[FieldPath, str]]:
    """:func:`apply_overrides`, also returning what each override set: the path of the value
    it set (or of the first section it had to create) mapped to its ``path=value`` text."""
    result = copy.deepcopy(dict(data))
    applied: dict[FieldPath, str] = {}
    problems: list[Problem] = []
    for item in sets:
        try:
            path = _apply_one(result, item, file)
        except _OverrideError as exc:
            problems.append(Problem(OVERRIDE_FILE, None, exc.path, exc.message, item))
            continue
        # A later override of the same path, or of one above it, replaced what this one set.
        for done in [p for p in applied if p[: len(path)] == path]:
            del applied[done]
        applied[path] = item
    if problems:
        raise ScenarioError(problems)
    return result, applied


def apply_overrides(data: Mapping[str, Any], sets: Sequence[str], file: str) -> dict[str, Any]:
    """Return a deep copy of ``data`` with ``--set path=value`` overrides applied.

    ``path`` is dotted with numeric list indices (``plant.servos.0.id=7``); ``value`` is read
    as YAML (``5``, ``[1, 2]``, ``{a: 1}``; empty means null) with the same safe rules as
    files.  A missing key is created — intermediate ones as empty mappings — and left to the
    model to judge; an index past a list's end or a path going into a plain value is an
    error.  ``file`` is the scenario file, named in messages.  Raises :class:`ScenarioError`
    with problems whose ``file`` is ``"--set"``.
    """
    return apply_overrides_tracked(data, sets, file)[0]


# --------------------------------------------------------------------------- validation
