"""Generic YAML → pydantic loading with one precise line per problem.

The scenario models plug into this machinery::

    model = load_model(Scenario, "scenarios/arm.yaml", sets=["duration=5"], checks=cross_checks)

Every kind of bad input — a missing file, bytes that are not UTF-8, broken YAML, YAML tags
that try to build Python objects, duplicate keys, alias bombs, wrong types, unknown keys,
impossible values — ends as one :class:`ScenarioError` whose ``problems`` each name the file,
the line where known and the dotted field path.  Nothing here evaluates user input: the YAML
is only *composed* into a node tree, and plain Python data is built from that tree by a small
constructor that knows mappings, lists, strings, numbers, booleans and null, nothing else.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from twin.scenario.overrides import apply_overrides, apply_overrides_tracked
from twin.scenario.problems import (
    OVERRIDE_FILE,
    FieldPath,
    LineMap,
    Problem,
    ScenarioError,
    ScenarioWarning,
    dotted,
    sorted_by_line,
)
from twin.scenario.yaml_reader import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, read_yaml, short_repr

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "OVERRIDE_FILE",
    "Check",
    "FieldPath",
    "LineMap",
    "Problem",
    "ScenarioError",
    "apply_overrides",
    "dotted",
    "load_model",
    "read_yaml",
    "validate",
]

Check = Callable[[BaseModel], Iterable[tuple[FieldPath, str]]]
M = TypeVar("M", bound=BaseModel)
_MAX_INPUT_REPR = 40


_MISSING = object()


def _child(container: Any, segment: Any) -> Any:
    if isinstance(container, dict) and isinstance(segment, str):
        return container.get(segment, _MISSING)
    if isinstance(container, list) and type(segment) is int and 0 <= segment < len(container):
        return container[segment]
    return _MISSING


def _data_path(loc: Sequence[str | int], data: Any, missing: bool) -> FieldPath:
    """The part of a pydantic ``loc`` that names places in ``data``.

    pydantic puts segments into ``loc`` that are not in the data: discriminated-union tags,
    union member names, ``function-after[...]``, ``[key]``.  Of the ways to read ``loc`` as
    a walk through ``data`` this keeps the one that reaches ``loc``'s last segment and
    otherwise matches most segments; a missing field's name counts as reached.
    """
    memo: dict[tuple[int, int], tuple[bool, tuple[str | int, ...]]] = {}

    def best(index: int, node: Any) -> tuple[bool, tuple[str | int, ...]]:
        if index == len(loc):
            return False, ()
        key = (index, id(node))
        if key not in memo:
            last = index == len(loc) - 1
            skip = best(index + 1, node)
            child = _child(node, loc[index])
            if child is not _MISSING:
                reached, rest = best(index + 1, child)
                take = (reached or last, (loc[index], *rest))
            elif last and missing and isinstance(node, dict):
                take = (True, (loc[index],))
            else:
                take = (False, ())
            memo[key] = max(take, skip, key=lambda option: (option[0], len(option[1])))
        return memo[key]

    return best(0, data)[1]


def _unwrap(annotation: Any, data: Any) -> Any:
    """Strip ``Annotated``/``Optional`` and pick the union member that ``data`` fits."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            options = [arg for arg in get_args(annotation) if arg is not type(None)]
            models = [arg for arg in options if _is_model(arg) and _fits(arg, data)]
            if len(options) == 1:
                annotation = options[0]
            elif models:
                annotation = models[0]
            else:
                return None
        else:
            return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _field_key(name: str, info: Any) -> str:
    return info.alias if isinstance(info.alias, str) else name


def _fits(model: type[BaseModel], data: Any) -> bool:
    """Whether ``data`` agrees with every ``Literal`` field of ``model`` (a union's tag)."""
    if not isinstance(data, dict):
        return False
    for name, info in model.model_fields.items():
        key = _field_key(name, info)
        is_tag = get_origin(info.annotation) is Literal and key in data
        if is_tag and data[key] not in get_args(info.annotation):
            return False
    return True


def _step(annotation: Any, segment: str | int) -> Any:
    """The annotation one ``segment`` below a model, list or mapping annotation."""
    if _is_model(annotation):
        for name, info in annotation.model_fields.items():
            if _field_key(name, info) == segment:
                return info.annotation
        return None
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is tuple and isinstance(segment, int) and args:
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
        return args[segment] if segment < len(args) else None
    if isinstance(segment, int) and args and origin in (list, set, frozenset, Sequence):
        return args[0]
    if len(args) == 2 and origin in (dict, Mapping):
        return args[1]
    return None


def _annotation_at(model_cls: type[BaseModel], path: FieldPath, data: Any) -> Any:
    """The annotation that validates the value at ``path`` of ``data``; ``None`` if unknown."""
    annotation: Any = model_cls
    for segment in path:
        annotation = _step(_unwrap(annotation, data), segment)
        data = _child(data, segment)
        if annotation is None:
            return None
    return _unwrap(annotation, data)


def _model_at(model_cls: type[BaseModel], path: FieldPath, data: Any) -> type[BaseModel] | None:
    """The model class that validates the value at ``path`` of ``data``, if it can be told."""
    annotation = _annotation_at(model_cls, path, data)
    return annotation if _is_model(annotation) else None


def _missing_items(
    error: Mapping[str, Any], model_cls: type[BaseModel], data: Any
) -> tuple[FieldPath, str] | None:
    """A fixed-length list (a tuple field) given too few items: pydantic reports the first
    absent index as a missing field; this names the list and says how many it takes."""
    loc, given = tuple(error["loc"]), error.get("input")
    if error["type"] != "missing" or not loc or type(loc[-1]) is not int or not isinstance(given, list):
        return None
    path = _data_path(loc[:-1], data, missing=False)
    if _child_lookup(data, path) != given:
        return None
    annotation = _annotation_at(model_cls, path, data)
    args = get_args(annotation) if get_origin(annotation) is tuple else ()
    wanted = f"{len(args)} items" if args and Ellipsis not in args else "more items"
    return path, f"expected {wanted}, got {len(given)}: {short_repr(given)}"


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_field(model_cls: type[BaseModel], path: FieldPath, data: Any) -> str:
    key = str(path[-1]) if path else "?"
    message = f"unknown field {key!r}"
    model = _model_at(model_cls, path[:-1], data)
    if model is not None:
        present = _child_lookup(data, path[:-1])
        names = [_field_key(n, i) for n, i in model.model_fields.items()]
        absent = [name for name in names if not (isinstance(present, dict) and name in present)]
        message += _suggest(key, absent) or _suggest(key, names)
    return message


def _child_lookup(data: Any, path: FieldPath) -> Any:
    for segment in path:
        data = _child(data, segment)
    return data


def _discriminator(ctx: Mapping[str, Any]) -> str:
    name = str(ctx.get("discriminator", ""))
    return name[1:-1] if len(name) >= 2 and name[0] == name[-1] == "'" else name


def _with_input(message: str, error: Mapping[str, Any]) -> str:
    """Add the offending input to pydantic's message when it is short and says something."""
    value = error.get("input", _MISSING)
    if value is _MISSING or isinstance(value, dict) or error["type"] == "missing":
        return message
    text = repr(value)
    if len(text) > _MAX_INPUT_REPR or ", got " in message:
        return message
    if error["type"].endswith("_parsing"):
        message = message.split(", ", 1)[0]
    return f"{message}, got {text}"


def _describe_error(error: Mapping[str, Any], model_cls: type[BaseModel], data: Any) -> tuple[FieldPath, str]:
    """The data path and the message for one pydantic error."""
    kind = error["type"]
    loc = tuple(error["loc"])
    too_few = _missing_items(error, model_cls, data)
    if too_few is not None:
        return too_few
    path = _data_path(loc, data, missing=kind == "missing")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return path, _unknown_field(model_cls, path, data)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        name = _discriminator(ctx)
        if name:
            path = (*path, name)
        if kind == "union_tag_not_found":
            return path, "Field required (it tells which kind of entry this is)"
        tags = re.findall(r"'((?:[^'\\]|\\.)*)'", str(ctx.get("expected_tags", "")))
        tag = str(ctx.get("tag", ""))
        expected = ", ".join(repr(t) for t in tags)
        return path, f"{name or 'tag'} {tag!r} is not one of {expected}" + _suggest(tag, tags)
    message = str(error["msg"]).removeprefix("Value error, ")
    if "[key]" in loc:
        message = "invalid key: " + message
    return path, _with_input(message, error)


def _locate(lines: LineMap, file: str, path: FieldPath, message: str) -> Problem:
    override = lines.override_of(path)
    if override is not None:
        return Problem(OVERRIDE_FILE, None, dotted(path), message, override)
    # A problem of a whole section (a cross-check, a model validator) that an override
    # changed a part of: the file's place, and the override that may have caused it.
    inside = lines.overrides_under(path)
    if inside:
        message += " (with " + ", ".join(f"{OVERRIDE_FILE} {text}" for text in inside) + ")"
    return Problem(file, lines.line_of(path), dotted(path), message)


def validate(
    model_cls: type[M],
    data: Any,
    lines: LineMap,
    file: str,
    checks: Check | None = None,
    context: Mapping[str, Any] | None = None,
    notes: Check | None = None,
) -> M:
    """Validate ``data`` with ``model_cls``; every failure becomes a :class:`Problem`.

    ``context`` reaches the model's validators (e.g. the file's folder, to resolve
    relative paths against the file rather than the working directory).

    pydantic errors are mapped back onto the data (union tags and validator names dropped
    from the path), located with ``lines`` and worded for people: the offending input when
    short, ``unknown field 'x' (did you mean 'y'?)``, the valid tags of a discriminated union.
    If the model validates, ``checks(model)`` may yield ``(path, message)`` pairs for
    cross-field problems.  Raises :class:`ScenarioError` with all problems sorted by line.
    """
    try:
        model = model_cls.model_validate(data, context=context)
    except ValidationError as exc:
        problems = [
            _locate(lines, file, *_describe_error(error, model_cls, data))
            for error in exc.errors(include_url=False)
        ]
        raise ScenarioError(sorted_by_line(problems)) from None
    if checks is not None:
        problems = [_locate(lines, file, tuple(path), message) for path, message in checks(model)]
        if problems:
            raise ScenarioError(sorted_by_line(problems))
    if notes is not None:  # it runs, but a person should know: a warning per note
        for note in sorted_by_line(
            [_locate(lines, file, tuple(path), message) for path, message in notes(model)]
        ):
            warnings.warn(ScenarioWarning(str(note)), stacklevel=3)
    return model


def load_model(
    model_cls: type[M],
    file: str | os.PathLike[str],
    sets: Sequence[str] = (),
    checks: Check | None = None,
    notes: Check | None = None,
) -> M:
    """Read ``file``, apply the ``--set`` overrides and validate with ``model_cls``.

    Problems with values that came from overrides name ``--set`` instead of the file.
    Validators get ``context["base_dir"]``, the file's folder.
    Raises :class:`ScenarioError`, and nothing else, for any bad input.
    """
    name = os.fspath(file)
    data, lines = read_yaml(name, shared=True)  # apply_overrides_tracked works on a copy
    data, applied = apply_overrides_tracked(data, sets, name)
    context = {"base_dir": os.path.dirname(os.path.abspath(name))}
    return validate(model_cls, data, lines.with_overrides(applied), name, checks, context, notes)
