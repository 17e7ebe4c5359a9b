"""Problems with a scenario file: what is wrong, in which file, line and field."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from servo_core.errors import ConfigError

__all__ = [
    "ScenarioWarning",
    "dotted",
    "FieldPath",
    "LineMap",
    "OVERRIDE_FILE",
    "override_path",
    "Problem",
    "problem_error",
    "ScenarioError",
    "sorted_by_line",
]

FieldPath = tuple[str | int, ...]
OVERRIDE_FILE = "--set"
"""The ``file`` of problems that come from command-line overrides."""


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
    override: str | None = None
    """For problems that come from a command-line override: its ``path=value`` text."""

    def __str__(self) -> str:
        what = " ".join(self.message.splitlines())
        if self.override is not None:
            where = f"{OVERRIDE_FILE} {' '.join(self.override.splitlines())}"
            # The override already names its own path; a problem deeper inside the value it
            # set (a field of a mapping it gave) still needs its own.
            if self.path and self.path != override_path(self.override):
                return f"{where}: {self.path}: {what}"
            return f"{where}: {what}"
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path}: {what}" if self.path else f"{where}: {what}"


def override_path(item: str) -> str:
    """The dotted path an override ``path=value`` sets, as the loader spells paths."""
    raw = item.partition("=")[0]
    return ".".join(segment.strip() for segment in raw.split("."))


class ScenarioError(ConfigError):
    """Bad scenario input; ``problems`` holds one :class:`Problem` per thing wrong."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


def problem_error(file: str, message: str, line: int | None = None, path: str = "") -> ScenarioError:
    return ScenarioError([Problem(file, line, path, message)])


def sorted_by_line(problems: Iterable[Problem]) -> list[Problem]:
    """Drop repeated problems and sort by line, problems without a line last."""
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line is None, p.line or 0))


# --------------------------------------------------------------------------- line map


class LineMap:
    """Where each value of a parsed document came from.

    Maps field paths to 1-based lines: a mapping value maps to the line of its key, a list
    item to the line where the item starts, ``()`` to the line of the document.  Paths set
    by command-line overrides are remembered, each with the override's ``path=value`` text,
    so that their problems can name ``--set`` and the override.
    """

    def __init__(
        self,
        lines: Mapping[FieldPath, int] | None = None,
        overridden: Mapping[FieldPath, str] | Iterable[FieldPath] = (),
    ) -> None:
        self._lines: dict[FieldPath, int] = dict(lines or {})
        if isinstance(overridden, Mapping):
            self._overridden: dict[FieldPath, str] = {tuple(p): text for p, text in overridden.items()}
        else:
            self._overridden = {tuple(p): dotted(p) for p in overridden}

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
        return self.override_of(path) is not None

    def override_of(self, path: Sequence[str | int]) -> str | None:
        """The text of the override that set ``path`` or a value above it; the most specific
        one when several did (``--set a={b: 1}`` then ``--set a.b=2``: ``a.b`` is the second's)."""
        path = tuple(path)
        for end in range(len(path), -1, -1):
            text = self._overridden.get(path[:end])
            if text is not None:
                return text
        return None

    def overrides_under(self, path: Sequence[str | int]) -> list[str]:
        """Texts of the overrides that set values strictly below ``path``."""
        path = tuple(path)
        return [
            text
            for done, text in self._overridden.items()
            if len(done) > len(path) and done[: len(path)] == path
        ]

    def with_overrides(self, paths: Mapping[FieldPath, str] | Iterable[FieldPath]) -> LineMap:
        """A copy that also marks ``paths`` as set by command-line overrides (a mapping gives
        each path the override's ``path=value`` text)."""
        more = paths if isinstance(paths, Mapping) else {tuple(p): dotted(p) for p in paths}
        return LineMap(self._lines, {**self._overridden, **{tuple(p): t for p, t in more.items()}})


# --------------------------------------------------------------------------- reading YAML


class ScenarioWarning(UserWarning):
    """Something in a scenario that runs but deserves a look (e.g. a servo over its rated
    voltage); the text is one line naming file, line and field, like a Problem."""
