"""`--random` distributions: parsing, clear refusals, deterministic draws within their support."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.distributions import Distribution, DistributionError, parse_distribution, split_top_level
from twin.scenario.overrides import _parse_value


def _parse(text: str) -> Distribution:
    return parse_distribution(text, lambda v: _parse_value(v, "x"))


def test_split_top_level_keeps_commas_inside_brackets_and_quotes() -> None:
    assert split_top_level("1, 2,3") == ["1", "2", "3"]
    assert split_top_level("[1,2],[3,4]") == ["[1,2]", "[3,4]"]
    assert split_top_level("'a,b', \"c,d\", {k: 1, j: 2}") == ["'a,b'", '"c,d"', "{k: 1, j: 2}"]


def test_each_kind_parses_and_draws_in_its_support() -> None:
    seeds = range(200)
    uniform = [_parse("uniform(0.5, 2)").draw(s, "p") for s in seeds]
    assert all(0.5 <= v < 2.0 for v in uniform) and max(uniform) - min(uniform) > 1.0
    bounded = [_parse("normal(1, 10, 0.9, 1.1)").draw(s, "p") for s in seeds]
    assert all(0.9 <= v <= 1.1 for v in bounded)
    free = [_parse("normal(0, 1)").draw(s, "p") for s in seeds]
    assert min(free) < -1.0 < 1.0 < max(free)
    logn = [_parse("lognormal(4, 0.5)").draw(s, "p") for s in seeds]
    assert all(v > 0 for v in logn) and sorted(logn)[100] == pytest.approx(4.0, rel=0.2)
    logu = [_parse("loguniform(1e-3, 1)").draw(s, "p") for s in seeds]
    assert all(1e-3 <= v <= 1.0 for v in logu) and sum(v < 0.03 for v in logu) > 50
    ints = [_parse("randint(1, 3)").draw(s, "p") for s in seeds]
    assert set(ints) == {1, 2, 3} and all(isinstance(v, int) for v in ints)
    picks = [_parse("choice(a, [1, 2], 3.5)").draw(s, "p") for s in seeds]
    assert {repr(v) for v in picks} == {"'a'", "[1, 2]", "3.5"}


def test_a_draw_depends_only_on_the_seed_and_the_path() -> None:
    dist = _parse("uniform(0, 1)")
    assert dist.draw(7, "a.b") == dist.draw(7, "a.b")
    assert dist.draw(7, "a.b") != dist.draw(8, "a.b")
    assert dist.draw(7, "a.b") != dist.draw(7, "a.c")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("gaussian(0, 1)", "unknown distribution 'gaussian'"),
        ("uniform 0 1", "is not a distribution"),
        ("uniform(2, 1)", "LO must be below HI"),
        ("uniform(0)", "expected uniform(LO, HI)"),
        ("uniform(0, x)", "'x' is not a number"),
        ("uniform(0, inf)", "not a finite number"),
        ("normal(0, -1)", "SD must not be negative"),
        ("normal(0, 1, 2)", "expected normal(MEAN, SD)"),
        ("loguniform(0, 1)", "LO must be above 0"),
        ("randint(1.5, 3)", "must be integers"),
        ("lognormal(-1, 0.2)", "MEDIAN must be above 0"),
        ("choice()", "at least one value"),
    ],
)
def test_bad_distributions_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(DistributionError, match=re.escape(says)):
        _parse(text)


def test_a_bounded_normal_that_cannot_be_met_is_an_error_not_a_hang() -> None:
    with pytest.raises(DistributionError, match="no draw fell inside"):
        _parse("normal(0, 1, 50, 51)").draw(1, "p")


@given(
    lo=st.floats(-1e6, 1e6, allow_nan=False),
    width=st.floats(1e-3, 1e6, allow_nan=False),
    seed=st.integers(0, 2**32 - 1),
)
def test_uniform_draws_stay_in_range(lo: float, width: float, seed: int) -> None:
    hi = lo + width
    assert lo < hi  # a width of at least 1e-3 on |lo| <= 1e6 always separates them
    value = _parse(f"uniform({lo!r}, {hi!r})").draw(seed, "p")
    assert lo <= value <= hi and math.isfinite(value)
