"""Reading YAML safely: plain data only, every value with its line.

The YAML is only *composed* into a node tree; Python data is built from that tree by a small
constructor that knows mappings, lists, strings, numbers, booleans and null, nothing else.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Callable
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from servo_core.files import MAX_INPUT_FILE_BYTES, InputFileError, read_input_file
from twin.scenario.problems import (
    FieldPath,
    LineMap,
    Problem,
    ScenarioError,
    dotted,
    problem_error,
    sorted_by_line,
)

__all__ = ["compose", "DataBuilder", "MAX_DEPTH", "MAX_FILE_BYTES", "MAX_NODES", "read_yaml", "short_repr"]

MAX_NODES = 100_000
"""Most values a document may expand to once aliases are followed (guards 'billion laughs')."""
MAX_DEPTH = 100
"""Deepest nesting of mappings and lists accepted."""
MAX_FILE_BYTES = MAX_INPUT_FILE_BYTES
"""Largest scenario file read (the same limit as robot files)."""
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


class _Composer(yaml.SafeLoader):
    """A SafeLoader used only up to the node tree; it notes the tags the user wrote."""

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        """Compose as usual, keeping an explicit tag on the node as ``explicit_tag``."""
        tag = getattr(self.peek_event(), "tag", None)
        node = super().compose_node(parent, index)
        if node is not None and tag not in (None, "!"):
            # Node declares no such attribute: it is set and read (_explicit_tag) dynamically.
            setattr(node, "explicit_tag", tag)  # noqa: B010
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


def short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_INPUT_REPR else text[: _MAX_INPUT_REPR - 4] + "...'"


class DataBuilder:
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
            if isinstance(node, MappingNode):
                return self._mapping(node, path, depth)
            raise TypeError(f"unexpected YAML node {type(node).__name__}")
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
            self._report(node, path, f"{short_repr(node.value)} is not a valid {_show_tag(tag)}")
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
        raw = read_input_file(file, MAX_FILE_BYTES)
    except InputFileError as exc:
        raise problem_error(file, exc.reason) from None
    return _decode(raw, file)


def _decode(raw: bytes, file: str) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise problem_error(file, "file is UTF-16 text; save it as UTF-8", 1)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = f"file is not UTF-8 text (byte 0x{raw[exc.start]:02x})"
        raise problem_error(file, message, line) from None


def compose(text: str, file: str) -> Node | None:
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
        raise problem_error(file, f"YAML syntax error: {exc}") from None
    except RecursionError:
        raise problem_error(file, "nesting is too deep") from None
    finally:
        loader.dispose()


def _reader_problem(exc: yaml.reader.ReaderError, text: str, file: str) -> ScenarioError:
    character = chr(exc.character) if isinstance(exc.character, int) else exc.character
    line = text[: exc.position].count("\n") + 1
    return problem_error(file, f"YAML does not allow the character {character!r}", line)


def _syntax_problem(exc: yaml.MarkedYAMLError, file: str) -> ScenarioError:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    message = exc.problem or "invalid YAML"
    if exc.context:
        message = f"{exc.context}, {message}"
    if exc.context_mark is not None and line is not None and exc.context_mark.line + 1 != line:
        message += f" (from line {exc.context_mark.line + 1})"
    return problem_error(file, f"YAML syntax error: {message}", line)


def _is_empty(root: Node | None) -> bool:
    return root is None or (
        isinstance(root, ScalarNode)
        and root.tag == _NULL
        and root.value == ""
        and _explicit_tag(root) is None
    )


def read_yaml(file: str | os.PathLike[str], *, shared: bool = False) -> tuple[Any, LineMap]:
    """Safely parse a YAML file into plain data (a ``dict``) and its :class:`LineMap`.

    Only mappings, lists, strings, integers, floats, booleans and null are built; mapping keys
    are kept as the text written.  Merge keys (``<<: *defaults``) work, the mapping's own keys
    winning.  Raises :class:`ScenarioError` for an unreadable, non-UTF-8 or empty file, YAML
    syntax errors, any tag other than the core ones (``!!python/...``, ``!custom``,
    ``!!timestamp``...), duplicate keys, documents expanding to more than ``MAX_NODES`` values
    or nesting deeper than ``MAX_DEPTH``, and a top level that is not a mapping.

    The parse is cached by the file's text; the data returned is the caller's own copy, unless
    `shared` (for a caller that copies before changing anything, as applying overrides does).
    """
    name = os.fspath(file)
    data, lines = _parse_document(name, _read_text(name))
    return (data if shared else copy.deepcopy(data)), lines


@functools.lru_cache(maxsize=32)
def _parse_document(name: str, text: str) -> tuple[Any, LineMap]:
    # Cached by the text: a sweep worker loads the same scenario for every run, and PyYAML's
    # pure-Python scanner is most of a load.
    root = compose(text, name)
    if root is None or _is_empty(root):
        raise problem_error(name, "file is empty")
    if not isinstance(root, MappingNode) and _explicit_tag(root) in (None, *_ALLOWED_TAGS):
        kind = "a list" if isinstance(root, SequenceNode) else "a single value"
        raise problem_error(name, f"top level must be a mapping of sections, not {kind}", _line(root))
    builder = DataBuilder(name)
    data = builder.build_document(root)
    if builder.problems:
        raise ScenarioError(sorted_by_line(builder.problems))
    return data, LineMap(builder.lines)


# --------------------------------------------------------------------------- overrides
