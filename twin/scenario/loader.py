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

import copy
import difflib
import os
import re
import stat
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from sim_models.errors import ConfigError

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

MAX_NODES = 100_000
"""Most values a document may expand to once aliases are followed (guards 'billion laughs')."""
MAX_DEPTH = 100
"""Deepest nesting of mappings and lists accepted."""
MAX_FILE_BYTES = 8 * 1024 * 1024
"""Largest scenario file read."""
OVERRIDE_FILE = "--set"
"""The ``file`` of problems that come from command-line overrides."""

FieldPath = tuple[str | int, ...]
Check = Callable[[BaseModel], Iterable[tuple[FieldPath, str]]]
M = TypeVar("M", bound=BaseModel)

_YAML_PREFIX = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL, _SEQ, _MAP, _MERGE = (
    _YAML_PREFIX + name for name in ("str", "int", "float", "bool", "null", "seq", "map", "merge")
)
_ALLOWED_TAGS: dict[str, type[Node]] = {
    _STR: ScalarNode,
    _INT: ScalarNode,
    _FLOAT: ScalarNode,
    _BOOL: ScalarNode,
    _NULL: ScalarNode,
    _SEQ: SequenceNode,
    _MAP: MappingNode,
}
_SCALARS = yaml.constructor.SafeConstructor()
_SCALAR_BUILDERS: dict[str, Callable[[ScalarNode], Any]] = {
    _INT: _SCALARS.construct_yaml_int,
    _FLOAT: _SCALARS.construct_yaml_float,
    _BOOL: _SCALARS.construct_yaml_bool,
    _NULL: _SCALARS.construct_yaml_null,
}
_MAX_INPUT_REPR = 40


# --------------------------------------------------------------------------- problems


def dotted(path: Iterable[str | int]) -> str:
    """``("plant", "servos", 2, "id")`` → ``"plant.servos.2.id"``."""
    return ".".join(str(segment) for segment in path)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, printable as one line."""

    file: str
    """The path as the user gave it, or ``"--set"`` for command-line overrides."""
    line: int | None
    """1-based line in the file, ``None`` when unknown."""
    path: str
    """Dotted field path, list indices as numbers; ``""`` for whole-file problems."""
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        what = " ".join(self.message.splitlines())
        return f"{where}: {self.path}: {what}" if self.path else f"{where}: {what}"


class ScenarioError(ConfigError):
    """Bad scenario input; ``problems`` holds one :class:`Problem` per thing wrong."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


def _fail(file: str, message: str, line: int | None = None, path: str = "") -> ScenarioError:
    return ScenarioError([Problem(file, line, path, message)])


def _by_line(problems: Iterable[Problem]) -> list[Problem]:
    """Drop repeated problems and sort by line, problems without a line last."""
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line is None, p.line or 0))


# --------------------------------------------------------------------------- line map


class LineMap:
    """Where each value of a parsed document came from.

    Maps field paths to 1-based lines: a mapping value maps to the line of its key, a list
    item to the line where the item starts, ``()`` to the line of the document.  Paths set
    by command-line overrides are remembered so that their problems can name ``--set``.
    """

    def __init__(
        self,
        lines: Mapping[FieldPath, int] | None = None,
        overridden: Iterable[FieldPath] = (),
    ) -> None:
        self._lines: dict[FieldPath, int] = dict(lines or {})
        self._overridden: frozenset[FieldPath] = frozenset(overridden)

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """Line of the deepest existing node along ``path``; ``None`` if not even the root's."""
        path = tuple(path)
        for end in range(len(path), -1, -1):
            line = self._lines.get(path[:end])
            if line is not None:
                return line
        return None

    def is_overridden(self, path: Sequence[str | int]) -> bool:
        """Whether ``path`` is, or lies under, a value set by a command-line override."""
        path = tuple(path)
        return any(path[: len(done)] == done for done in self._overridden)

    def with_overrides(self, paths: Iterable[FieldPath]) -> LineMap:
        """A copy that also marks ``paths`` as set by command-line overrides."""
        return LineMap(self._lines, self._overridden | {tuple(p) for p in paths})


# --------------------------------------------------------------------------- reading YAML


class _Composer(yaml.SafeLoader):
    """A SafeLoader used only up to the node tree; it notes the tags the user wrote."""

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        """Compose as usual, keeping an explicit tag on the node as ``explicit_tag``."""
        tag = getattr(self.peek_event(), "tag", None)
        node = super().compose_node(parent, index)
        if tag not in (None, "!"):
            node.explicit_tag = tag  # type: ignore[attr-defined]
        return node


class _TooLarge(Exception):
    """The document expands to more than MAX_NODES values."""


def _explicit_tag(node: Node) -> str | None:
    return getattr(node, "explicit_tag", None)


def _show_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_YAML_PREFIX) if tag.startswith(_YAML_PREFIX) else tag


def _is_merge_key(node: Node) -> bool:
    """Whether ``node`` is a plain ``<<`` merge key."""
    return isinstance(node, ScalarNode) and node.tag == _MERGE and _explicit_tag(node) is None


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_INPUT_REPR else text[: _MAX_INPUT_REPR - 4] + "...'"


class _Builder:
    """Builds plain Python data from a node tree, collecting problems instead of raising."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.lines: dict[FieldPath, int] = {}
        self._count = 0
        self._active: set[int] = set()
        self._reported: set[tuple[int, str]] = set()

    def build_document(self, root: Node) -> Any:
        """Build the whole document; problems end in ``self.problems``."""
        self.lines[()] = _line(root)
        try:
            return self._build(root, (), 0)
        except _TooLarge:
            message = f"too many aliases: the document expands to more than {MAX_NODES} values"
            self.problems.append(Problem(self.file, None, "", message))
        except RecursionError:
            self.problems.append(Problem(self.file, None, "", "nesting is too deep"))
        return None

    def _tick(self) -> None:
        self._count += 1
        if self._count > MAX_NODES:
            raise _TooLarge

    def _report(self, node: Node, path: FieldPath, message: str) -> None:
        """Record a problem of ``node``, once even when aliases reach it many times."""
        if (id(node), message) not in self._reported:
            self._reported.add((id(node), message))
            self.problems.append(Problem(self.file, _line(node), dotted(path), message))

    def _tag_ok(self, node: Node, path: FieldPath) -> bool:
        tag = _explicit_tag(node)
        if tag is None:
            return True
        kind = _ALLOWED_TAGS.get(tag)
        if kind is None:
            self._report(node, path, f"YAML tag {_show_tag(tag)} is not allowed")
        elif not isinstance(node, kind):
            self._report(node, path, f"YAML tag {_show_tag(tag)} does not fit this value")
        return kind is not None and isinstance(node, kind)

    def _build(self, node: Node, path: FieldPath, depth: int) -> Any:
        self._tick()
        if id(node) in self._active:
            self._report(node, path, "recursive alias: this value contains itself")
            return None
        if depth > MAX_DEPTH:
            self._report(node, path, f"nesting is deeper than {MAX_DEPTH} levels")
            return None
        if not self._tag_ok(node, path):
            return None
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return self._sequence(node, path, depth)
            return self._mapping(node, path, depth)
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: ScalarNode, path: FieldPath) -> Any:
        tag = _explicit_tag(node) or node.tag
        builder = _SCALAR_BUILDERS.get(tag)
        if builder is None:  # str, and implicit timestamps, '=' and the like
            return node.value
        try:
            return builder(node)
        except (ValueError, KeyError, IndexError, TypeError):
            self._report(node, path, f"{_short(node.value)} is not a valid {_show_tag(tag)}")
            return None

    def _sequence(self, node: SequenceNode, path: FieldPath, depth: int) -> list[Any]:
        items = []
        for index, item in enumerate(node.value):
            self.lines[(*path, index)] = _line(item)
            items.append(self._build(item, (*path, index), depth + 1))
        return items

    def _mapping(self, node: MappingNode, path: FieldPath, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node, explicit in self._pairs(node, path, frozenset()):
            key = self._key(key_node, path)
            if key is None:
                continue
            if key in result:
                if explicit and key in first_line:
                    message = f"duplicate key {key!r} (first on line {first_line[key]})"
                    self._report(key_node, (*path, key), message)
                continue
            if explicit:
                first_line[key] = _line(key_node)
            self.lines[(*path, key)] = _line(key_node)
            result[key] = self._build(value_node, (*path, key), depth + 1)
        return result

    def _pairs(
        self, node: MappingNode, path: FieldPath, seen: frozenset[int]
    ) -> list[tuple[Node, Node, bool]]:
        """Key/value nodes of a mapping: its own first, then those merged in with ``<<``."""
        if id(node) in seen:
            self._report(node, path, "recursive alias: this mapping merges itself")
            return []
        seen = seen | {id(node)}
        pairs: list[tuple[Node, Node, bool]] = []
        sources: list[MappingNode] = []
        for key_node, value_node in node.value:
            self._tick()
            if _is_merge_key(key_node):
                sources.extend(self._merge_sources(value_node, path))
                continue
            pairs.append((key_node, value_node, True))
        for source in sources:
            pairs.extend((key, value, False) for key, value, _ in self._pairs(source, path, seen))
        return pairs

    def _merge_sources(self, node: Node, path: FieldPath) -> list[MappingNode]:
        if isinstance(node, MappingNode) and _explicit_tag(node) in (None, _MAP):
            return [node]
        if isinstance(node, SequenceNode) and all(
            isinstance(item, MappingNode) and _explicit_tag(item) in (None, _MAP) for item in node.value
        ):
            return list(node.value)
        self._report(node, path, "merge key '<<' needs a mapping or a list of mappings")
        return []

    def _key(self, node: Node, path: FieldPath) -> str | None:
        """A mapping key as the text the user wrote; ``None`` (reported) when not plain."""
        self._tick()
        if not isinstance(node, ScalarNode):
            kind = "a list" if isinstance(node, SequenceNode) else "a mapping"
            self._report(node, path, f"a mapping key must be a plain value, not {kind}")
            return None
        return node.value if self._tag_ok(node, path) else None


def _read_text(file: str) -> str:
    """The file's text; :class:`ScenarioError` when it cannot be read as UTF-8."""
    try:
        info = os.stat(file)
        if stat.S_ISDIR(info.st_mode):
            raise _fail(file, "is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise _fail(file, "is not a regular file")
        with open(file, "rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise _fail(file, "file not found") from None
    except PermissionError:
        raise _fail(file, "permission denied") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        reason = getattr(exc, "strerror", None) or str(exc)
        raise _fail(file, f"cannot read the file: {reason}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise _fail(file, f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    return _decode(raw, file)


def _decode(raw: bytes, file: str) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _fail(file, "file is UTF-16 text; save it as UTF-8", 1)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = f"file is not UTF-8 text (byte 0x{raw[exc.start]:02x})"
        raise _fail(file, message, line) from None


def _compose(text: str, file: str) -> Node | None:
    """The YAML node tree of ``text`` (``None`` when it holds no document)."""
    try:
        loader = _Composer(text)
    except yaml.reader.ReaderError as exc:
        raise _reader_problem(exc, text, file) from None
    try:
        return loader.get_single_node()
    except yaml.reader.ReaderError as exc:
        raise _reader_problem(exc, text, file) from None
    except yaml.MarkedYAMLError as exc:
        raise _syntax_problem(exc, file) from None
    except yaml.YAMLError as exc:
        raise _fail(file, f"YAML syntax error: {exc}") from None
    except RecursionError:
        raise _fail(file, "nesting is too deep") from None
    finally:
        loader.dispose()


def _reader_problem(exc: yaml.reader.ReaderError, text: str, file: str) -> ScenarioError:
    character = chr(exc.character) if isinstance(exc.character, int) else exc.character
    line = text[: exc.position].count("\n") + 1
    return _fail(file, f"YAML does not allow the character {character!r}", line)


def _syntax_problem(exc: yaml.MarkedYAMLError, file: str) -> ScenarioError:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    message = exc.problem or "invalid YAML"
    if exc.context:
        message = f"{exc.context}, {message}"
    if exc.context_mark is not None and line is not None and exc.context_mark.line + 1 != line:
        message += f" (from line {exc.context_mark.line + 1})"
    return _fail(file, f"YAML syntax error: {message}", line)


def _is_empty(root: Node | None) -> bool:
    return root is None or (
        isinstance(root, ScalarNode)
        and root.tag == _NULL
        and root.value == ""
        and _explicit_tag(root) is None
    )


def read_yaml(file: str | os.PathLike[str]) -> tuple[Any, LineMap]:
    """Safely parse a YAML file into plain data (a ``dict``) and its :class:`LineMap`.

    Only mappings, lists, strings, integers, floats, booleans and null are built; mapping keys
    are kept as the text written.  Merge keys (``<<: *defaults``) work, the mapping's own keys
    winning.  Raises :class:`ScenarioError` for an unreadable, non-UTF-8 or empty file, YAML
    syntax errors, any tag other than the core ones (``!!python/...``, ``!custom``,
    ``!!timestamp``...), duplicate keys, documents expanding to more than ``MAX_NODES`` values
    or nesting deeper than ``MAX_DEPTH``, and a top level that is not a mapping.
    """
    name = os.fspath(file)
    root = _compose(_read_text(name), name)
    if root is None or _is_empty(root):
        raise _fail(name, "file is empty")
    if not isinstance(root, MappingNode) and _explicit_tag(root) in (None, *_ALLOWED_TAGS):
        kind = "a list" if isinstance(root, SequenceNode) else "a single value"
        raise _fail(name, f"top level must be a mapping of sections, not {kind}", _line(root))
    builder = _Builder(name)
    data = builder.build_document(root)
    if builder.problems:
        raise ScenarioError(_by_line(builder.problems))
    return data, LineMap(builder.lines)


# --------------------------------------------------------------------------- overrides


class _OverrideError(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _parse_value(text: str, where: str) -> Any:
    """An override's value, read as YAML with the same safe rules as files."""
    try:
        node = _compose(text, OVERRIDE_FILE)
    except ScenarioError as exc:
        raise _OverrideError(where, exc.problems[0].message) from None
    if node is None:
        return None
    builder = _Builder(OVERRIDE_FILE)
    value = builder.build_document(node)
    if builder.problems:
        raise _OverrideError(where, "; ".join(p.message for p in builder.problems))
    return value


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    kind = {bool: "boolean", int: "number", float: "number", str: "string"}.get(type(value))
    return f"the {kind or type(value).__name__} {_short(value)}"


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
        raise _OverrideError("", f"expected path=value, got {item!r}")
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


def _apply_overrides(
    data: Mapping[str, Any], sets: Sequence[str], file: str
) -> tuple[dict[str, Any], list[FieldPath]]:
    result = copy.deepcopy(dict(data))
    applied: list[FieldPath] = []
    problems: list[Problem] = []
    for item in sets:
        try:
            applied.append(_apply_one(result, item, file))
        except _OverrideError as exc:
            problems.append(Problem(OVERRIDE_FILE, None, exc.path, exc.message))
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
    return _apply_overrides(data, sets, file)[0]


# --------------------------------------------------------------------------- validation


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


def _model_at(model_cls: type[BaseModel], path: FieldPath, data: Any) -> type[BaseModel] | None:
    """The model class that validates the value at ``path`` of ``data``, if it can be told."""
    annotation: Any = model_cls
    for segment in path:
        annotation = _step(_unwrap(annotation, data), segment)
        data = _child(data, segment)
        if annotation is None:
            return None
    annotation = _unwrap(annotation, data)
    return annotation if _is_model(annotation) else None


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
    if lines.is_overridden(path):
        return Problem(OVERRIDE_FILE, None, dotted(path), message)
    return Problem(file, lines.line_of(path), dotted(path), message)


def validate(
    model_cls: type[M],
    data: Any,
    lines: LineMap,
    file: str,
    checks: Check | None = None,
) -> M:
    """Validate ``data`` with ``model_cls``; every failure becomes a :class:`Problem`.

    pydantic errors are mapped back onto the data (union tags and validator names dropped
    from the path), located with ``lines`` and worded for people: the offending input when
    short, ``unknown field 'x' (did you mean 'y'?)``, the valid tags of a discriminated union.
    If the model validates, ``checks(model)`` may yield ``(path, message)`` pairs for
    cross-field problems.  Raises :class:`ScenarioError` with all problems sorted by line.
    """
    try:
        model = model_cls.model_validate(data)
    except ValidationError as exc:
        problems = [
            _locate(lines, file, *_describe_error(error, model_cls, data))
            for error in exc.errors(include_url=False)
        ]
        raise ScenarioError(_by_line(problems)) from None
    if checks is not None:
        problems = [_locate(lines, file, tuple(path), message) for path, message in checks(model)]
        if problems:
            raise ScenarioError(_by_line(problems))
    return model


def load_model(
    model_cls: type[M],
    file: str | os.PathLike[str],
    sets: Sequence[str] = (),
    checks: Check | None = None,
) -> M:
    """Read ``file``, apply the ``--set`` overrides and validate with ``model_cls``.

    Problems with values that came from overrides name ``--set`` instead of the file.
    Raises :class:`ScenarioError`, and nothing else, for any bad input.
    """
    name = os.fspath(file)
    data, lines = read_yaml(name)
    data, applied = _apply_overrides(data, sets, name)
    return validate(model_cls, data, lines.with_overrides(applied), name, checks)
