"""Distributions for `twin sweep --random PATH=DIST`: parsed from text, drawn from a seed.

A draw depends only on the seed and the path (a generator per (seed, path)), so every grid
point run with seed s sees the same drawn values: the grid's columns differ only by what the
grid changes (common random numbers), and any row can be run again on its own.

    uniform(LO, HI)            any value in [LO, HI)
    normal(MEAN, SD[, LO, HI]) Gaussian, redrawn until it falls in [LO, HI] when bounds are given
    lognormal(MEDIAN, SIGMA)   MEDIAN * exp(SIGMA * z)
    loguniform(LO, HI)         uniform in log space (0 < LO < HI)
    randint(LO, HI)            an integer, LO and HI included
    choice(V1, V2, ...)        one of the values (read as --set reads them), equally likely
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from servo_core.errors import TwinError
from sim_models.rng import component_rng

__all__ = ["DistributionError", "Distribution", "parse_distribution", "split_top_level"]

_CALL = re.compile(r"^\s*([a-z_]+)\s*\((.*)\)\s*$", re.DOTALL)
_MAX_REDRAWS = 10_000


class DistributionError(TwinError):
    """A distribution that cannot be read or drawn from."""


def split_top_level(text: str) -> list[str]:
    """Split on the commas that are not inside brackets, braces or quotes: `[1,2],x` -> two."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


@dataclass(frozen=True)
class Distribution:
    """One parsed distribution; `draw(seed, path)` is deterministic."""

    kind: str
    args: tuple[Any, ...]
    text: str

    def draw(self, seed: int, path: str) -> Any:
        rng = component_rng(seed, f"sweep-random:{path}")
        return _DRAWS[self.kind](rng, self.args)


def _uniform(rng: np.random.Generator, a: tuple[Any, ...]) -> float:
    return float(rng.uniform(a[0], a[1]))


def _normal(rng: np.random.Generator, a: tuple[Any, ...]) -> float:
    if len(a) == 2:
        return float(rng.normal(a[0], a[1]))
    for _ in range(_MAX_REDRAWS):
        x = float(rng.normal(a[0], a[1]))
        if a[2] <= x <= a[3]:
            return x
    raise DistributionError(f"normal{a}: no draw fell inside the bounds in {_MAX_REDRAWS} tries")


def _lognormal(rng: np.random.Generator, a: tuple[Any, ...]) -> float:
    return float(a[0] * math.exp(a[1] * rng.standard_normal()))


def _loguniform(rng: np.random.Generator, a: tuple[Any, ...]) -> float:
    return float(math.exp(rng.uniform(math.log(a[0]), math.log(a[1]))))


def _randint(rng: np.random.Generator, a: tuple[Any, ...]) -> int:
    return int(rng.integers(a[0], a[1], endpoint=True))


def _choice(rng: np.random.Generator, a: tuple[Any, ...]) -> Any:
    return a[int(rng.integers(0, len(a)))]


_DRAWS: dict[str, Callable[[np.random.Generator, tuple[Any, ...]], Any]] = {
    "uniform": _uniform,
    "normal": _normal,
    "lognormal": _lognormal,
    "loguniform": _loguniform,
    "randint": _randint,
    "choice": _choice,
}
_USAGE = {
    "uniform": "uniform(LO, HI)",
    "normal": "normal(MEAN, SD) or normal(MEAN, SD, LO, HI)",
    "lognormal": "lognormal(MEDIAN, SIGMA)",
    "loguniform": "loguniform(LO, HI)",
    "randint": "randint(LO, HI)",
    "choice": "choice(V1, V2, ...)",
}


def parse_distribution(text: str, parse_value: Callable[[str], Any]) -> Distribution:
    """Read `kind(args)`; DistributionError saying what is wrong. `parse_value` reads one
    argument as `--set` reads a value."""
    match = _CALL.match(text)
    if match is None:
        raise DistributionError(
            f"{text!r} is not a distribution; expected one of: {', '.join(_USAGE.values())}"
        )
    kind, raw = match.group(1), match.group(2)
    if kind not in _DRAWS:
        raise DistributionError(
            f"unknown distribution {kind!r}; expected one of: {', '.join(_USAGE.values())}"
        )
    parts = split_top_level(raw) if raw.strip() else []
    if kind == "choice":
        if not parts or any(p == "" for p in parts):
            raise DistributionError(f"{text}: expected {_USAGE[kind]}, with at least one value")
        return Distribution(kind, tuple(parse_value(p) for p in parts), text.strip())
    values: list[Any] = [_number(p, text, kind) for p in parts]
    _check(kind, values, text)
    if kind == "randint":
        values = [int(x) for x in values]
    return Distribution(kind, tuple(values), text.strip())


def _number(part: str, text: str, kind: str) -> float:
    try:
        value = float(part)
    except ValueError:
        raise DistributionError(f"{text}: {part!r} is not a number; expected {_USAGE[kind]}") from None
    if not math.isfinite(value):
        raise DistributionError(f"{text}: {part!r} is not a finite number")
    return value


def _check(kind: str, v: Sequence[float], text: str) -> None:
    usage = _USAGE[kind]
    counts = {"normal": (2, 4)}.get(kind, (2,))
    if len(v) not in counts:
        raise DistributionError(f"{text}: expected {usage}")
    problem = ""
    if kind in ("uniform", "loguniform", "randint") and not v[0] < v[1]:
        problem = "LO must be below HI"
    elif kind == "loguniform" and v[0] <= 0:
        problem = "LO must be above 0"
    elif kind == "randint" and not (v[0].is_integer() and v[1].is_integer()):
        problem = "LO and HI must be integers"
    elif kind == "normal" and v[1] < 0:
        problem = "SD must not be negative"
    elif kind == "normal" and len(v) == 4 and not v[2] < v[3]:
        problem = "LO must be below HI"
    elif kind == "lognormal" and (v[0] <= 0 or v[1] < 0):
        problem = "MEDIAN must be above 0 and SIGMA not negative"
    if problem:
        raise DistributionError(f"{text}: {problem}")
