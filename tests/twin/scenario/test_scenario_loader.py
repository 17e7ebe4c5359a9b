"""Tests of the generic YAML → pydantic scenario loader."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field

from servo_core.errors import ConfigError
from twin.scenario.loader import (
    FieldPath,
    LineMap,
    Problem,
    ScenarioError,
    apply_overrides,
    load_model,
    read_yaml,
    validate,
)

# --------------------------------------------------------------------------- models


class Servo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int
    name: str = "servo"
    max_speed: float = 1.0


class Plant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    servos: list[Servo]


class Crash(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["crash"]
    at: float


class Stall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["stall"]
    servo: int
    duration: float = 1.0


Fault = Annotated[Crash | Stall, Field(discriminator="type")]


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    duration: float = Field(gt=0)
    plant: Plant
    faults: list[Fault] = []


def cross_checks(scenario: BaseModel) -> Iterator[tuple[FieldPath, str]]:
    """Every stalled servo must exist."""
    assert isinstance(scenario, Scenario)
    ids = {servo.id for servo in scenario.plant.servos}
    for index, fault in enumerate(scenario.faults):
        if isinstance(fault, Stall) and fault.servo not in ids:
            yield ("faults", index, "servo"), f"no servo with id {fault.servo}"


GOOD = """\
duration: 2.5
plant:
  servos:
    - id: 1
      name: shoulder
    - id: 2
      name: elbow
faults:
  - type: stall
    servo: 2
"""


def edit(old: str, new: str) -> str:
    """GOOD with one piece of text replaced."""
    assert old in GOOD
    return GOOD.replace(old, new, 1)


def billion_laughs() -> str:
    lines = ["lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 10):
        refs = ", ".join([f"*l{level - 1}"] * 10)
        lines.append(f"lol{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- bad inputs

SENTINEL = "pwned.txt"

# (id, file name, content, --set overrides, expected problem lines as prefixes)
# content: str is written as UTF-8, bytes as they are, None creates nothing, "<dir>" a folder.
# In expected lines "{f}" is the scenario file as given.
BAD_INPUTS = [
    ("missing file", "nope.yaml", None, [], ["{f}: file not found"]),
    ("directory", "adir", "<dir>", [], ["{f}: is a directory, not a file"]),
    (
        "not utf-8",
        "s.yaml",
        b"duration: 1\nplant: \xff\xfe\x00\x01",
        [],
        ["{f}:2: file is not UTF-8 text (byte 0xff)"],
    ),
    (
        "control character",
        "s.yaml",
        "duration: 1\nplant: \x00\n",
        [],
        ["{f}:2: YAML does not allow the character '\\x00'"],
    ),
    (
        "syntax error",
        "s.yaml",
        "duration: 1\nplant: [1, 2\nfaults: []\n",
        [],
        ["{f}:3: YAML syntax error: while parsing a flow sequence, expected ',' or ']'"],
    ),
    (
        "python object tag",
        "s.yaml",
        f"duration: !!python/object/apply:os.system ['touch {SENTINEL}']\n",
        [],
        ["{f}:1: duration: YAML tag !!python/object/apply:os.system is not allowed"],
    ),
    (
        "python name tag",
        "s.yaml",
        "duration: 1\nplant: !!python/name:os.system\n",
        [],
        ["{f}:2: plant: YAML tag !!python/name:os.system is not allowed"],
    ),
    (
        "custom tag",
        "s.yaml",
        edit("    - id: 2\n", "    - !servo\n      id: 2\n"),
        [],
        ["{f}:6: plant.servos.1: YAML tag !servo is not allowed"],
    ),
    (
        "duplicate key",
        "s.yaml",
        GOOD + "duration: 3\n",
        [],
        ["{f}:11: duration: duplicate key 'duration' (first on line 1)"],
    ),
    (
        "duplicate key deep",
        "s.yaml",
        edit("      name: elbow\n", "      name: elbow\n      name: wrist\n"),
        [],
        ["{f}:8: plant.servos.1.name: duplicate key 'name' (first on line 7)"],
    ),
    ("billion laughs", "s.yaml", billion_laughs(), [], ["{f}: too many aliases"]),
    ("recursive alias", "s.yaml", "a: &a [1, *a]\n", [], ["{f}:1: a.1: recursive alias"]),
    ("too deep to parse", "s.yaml", "a: " + "[" * 5000, [], ["{f}: nesting is too deep"]),
    (
        "too deep to accept",
        "s.yaml",
        "a: " + "[" * 150 + "]" * 150 + "\n",
        [],
        ["{f}:1: a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0"],
    ),
    ("empty file", "s.yaml", "", [], ["{f}: file is empty"]),
    ("only comments", "s.yaml", "# nothing here\n", [], ["{f}: file is empty"]),
    (
        "top-level list",
        "s.yaml",
        "- duration: 1\n",
        [],
        ["{f}:1: top level must be a mapping of sections, not a list"],
    ),
    (
        "top-level scalar",
        "s.yaml",
        "hello\n",
        [],
        ["{f}:1: top level must be a mapping of sections, not a single value"],
    ),
    (
        "two documents",
        "s.yaml",
        GOOD + "---\nduration: 1\n",
        [],
        ["{f}:11: YAML syntax error: expected a single document in the stream"],
    ),
    (
        "list as key",
        "s.yaml",
        GOOD + "? [a, b]\n: 1\n",
        [],
        ["{f}:11: a mapping key must be a plain value, not a list"],
    ),
    (
        "bad explicit scalar",
        "s.yaml",
        edit("2.5", "!!float fast"),
        [],
        ["{f}:1: duration: 'fast' is not a valid !!float"],
    ),
    (
        "wrong type deep in a list",
        "s.yaml",
        edit("id: 2", "id: abc"),
        [],
        ["{f}:6: plant.servos.1.id: Input should be a valid integer, got 'abc'"],
    ),
    (
        "impossible value",
        "s.yaml",
        edit("2.5", "-1"),
        [],
        ["{f}:1: duration: Input should be greater than 0, got -1"],
    ),
    (
        "unknown key with suggestion",
        "s.yaml",
        edit("name: elbow", "nmae: elbow"),
        [],
        ["{f}:7: plant.servos.1.nmae: unknown field 'nmae' (did you mean 'name'?)"],
    ),
    (
        "unknown key without suggestion",
        "s.yaml",
        GOOD + "colour: red\n",
        [],
        ["{f}:11: colour: unknown field 'colour'"],
    ),
    (
        "unknown key inside a union member",
        "s.yaml",
        edit("    servo: 2\n", "    servo: 2\n    durration: 3\n"),
        [],
        ["{f}:11: faults.0.durration: unknown field 'durration' (did you mean 'duration'?)"],
    ),
    (
        "bad discriminator",
        "s.yaml",
        edit("type: stall", "type: stal"),
        [],
        ["{f}:9: faults.0.type: type 'stal' is not one of 'crash', 'stall' (did you mean 'stall'?"],
    ),
    (
        "missing discriminator",
        "s.yaml",
        edit("  - type: stall\n    servo: 2\n", "  - servo: 2\n"),
        [],
        ["{f}:9: faults.0.type: Field required"],
    ),
    (
        "missing field in a union member",
        "s.yaml",
        GOOD + "  - type: crash\n",
        [],
        ["{f}:11: faults.1.at: Field required"],
    ),
    (
        "missing required field",
        "s.yaml",
        edit("      name: shoulder\n", "      name: shoulder\n    - name: wrist\n"),
        [],
        ["{f}:6: plant.servos.1.id: Field required"],
    ),
    (
        "missing section",
        "s.yaml",
        "duration: 1\n",
        [],
        ["{f}:1: plant: Field required"],
    ),
    (
        "several problems, sorted by line",
        "s.yaml",
        edit("2.5", "0").replace("name: elbow", "name: [elbow]").replace("id: 1", "id: x"),
        [],
        [
            "{f}:1: duration: Input should be greater than 0, got 0",
            "{f}:4: plant.servos.0.id: Input should be a valid integer, got 'x'",
            "{f}:7: plant.servos.1.name: Input should be a valid string, got ['elbow']",
        ],
    ),
    (
        "cross-field check",
        "s.yaml",
        edit("servo: 2", "servo: 9"),
        [],
        ["{f}:10: faults.0.servo: no servo with id 9"],
    ),
    ("set without '='", "s.yaml", GOOD, ["duration"], ["--set duration: expected path=value"]),
    ("set with empty path", "s.yaml", GOOD, ["=3"], ["--set =3: expected path=value"]),
    (
        "set index out of range",
        "s.yaml",
        GOOD,
        ["plant.servos.2.id=3"],
        ["--set plant.servos.2.id=3: index 2 is out of range: plant.servos has 2 items in s.yaml"],
    ),
    (
        "set non-numeric index",
        "s.yaml",
        GOOD,
        ["plant.servos.first.id=3"],
        ["--set plant.servos.first.id=3: plant.servos is a list; expected an index, not 'first'"],
    ),
    (
        "set into a scalar",
        "s.yaml",
        GOOD,
        ["duration.seconds=3"],
        ["--set duration.seconds=3: cannot go into duration: it is the number 2.5"],
    ),
    (
        "set with a forbidden tag",
        "s.yaml",
        GOOD,
        ["duration=!!python/object/apply:os.system [ls]"],
        [
            "--set duration=!!python/object/apply:os.system [ls]: "
            "YAML tag !!python/object/apply:os.system is not allowed"
        ],
    ),
    (
        "set with broken YAML",
        "s.yaml",
        GOOD,
        ["duration=[1, 2"],
        ["--set duration=[1, 2: YAML syntax error"],
    ),
    (
        "set with a wrong type",
        "s.yaml",
        GOOD,
        ["plant.servos.0.id=abc"],
        ["--set plant.servos.0.id=abc: Input should be a valid integer, got 'abc'"],
    ),
    (
        "set an unknown key",
        "s.yaml",
        GOOD,
        ["plant.servos.0.nam=abc"],
        ["--set plant.servos.0.nam=abc: unknown field 'nam' (did you mean 'name'?)"],
    ),
    (
        "set an unknown section",
        "s.yaml",
        GOOD,
        ["plnt.speed=1"],
        ["--set plnt.speed=1: plnt: unknown field 'plnt' (did you mean 'plant'?)"],
    ),
    (
        "all bad sets are reported",
        "s.yaml",
        GOOD,
        ["a", "duration.x=1", "faults.5=1"],
        [
            "--set a: expected path=value",
            "--set duration.x=1: cannot go into duration",
            "--set faults.5=1: index 5 is out of range: faults has 1 item in",
        ],
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "sets", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUTS],
)
def test_bad_input_gives_one_line_per_problem(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    content: str | bytes | None,
    sets: list[str],
    expected: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    if content == "<dir>":
        Path(name).mkdir()
    elif isinstance(content, bytes):
        Path(name).write_bytes(content)
    elif content is not None:
        Path(name).write_text(content, encoding="utf-8")

    with pytest.raises(ScenarioError) as caught:
        load_model(Scenario, name, sets, checks=cross_checks)

    lines = str(caught.value).splitlines()
    assert len(lines) == len(expected), lines
    for line, prefix in zip(lines, expected, strict=True):
        assert line.startswith(prefix.format(f=name)), line
    assert not Path(SENTINEL).exists()


# --------------------------------------------------------------------------- good inputs


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_file_loads(tmp_path: Path) -> None:
    scenario = load_model(Scenario, write(tmp_path, GOOD), checks=cross_checks)
    assert scenario.duration == 2.5
    assert [servo.name for servo in scenario.plant.servos] == ["shoulder", "elbow"]
    assert scenario.faults == [Stall(type="stall", servo=2)]


def test_set_changes_values(tmp_path: Path) -> None:
    sets = [
        "plant.servos.0.id=7",
        "duration = 5",
        "faults.0={type: crash, at: 1.5}",
        "plant.servos.1.max_speed=2.25",
        "plant.servos.1.name='42'",
    ]
    scenario = load_model(Scenario, write(tmp_path, GOOD), sets, checks=cross_checks)
    assert scenario.duration == 5
    assert scenario.plant.servos[0].id == 7
    assert scenario.faults == [Crash(type="crash", at=1.5)]
    assert scenario.plant.servos[1].max_speed == 2.25
    assert scenario.plant.servos[1].name == "42"


def test_set_can_replace_a_list(tmp_path: Path) -> None:
    scenario = load_model(Scenario, write(tmp_path, GOOD), ["faults=[]"])
    assert scenario.faults == []


def test_apply_overrides_leaves_the_input_alone() -> None:
    data = {"plant": {"servos": [{"id": 1}]}}
    changed = apply_overrides(data, ["plant.servos.0.id=2", "plant.extra.deep=1"], "x.yaml")
    assert data == {"plant": {"servos": [{"id": 1}]}}
    assert changed == {"plant": {"servos": [{"id": 2}], "extra": {"deep": 1}}}


def test_apply_overrides_reads_values_as_yaml() -> None:
    data = {"a": 1}
    assert apply_overrides(data, ["a=[1, 2]"], "x")["a"] == [1, 2]
    assert apply_overrides(data, ["a={b: 1}"], "x")["a"] == {"b": 1}
    assert apply_overrides(data, ["a=true"], "x")["a"] is True
    assert apply_overrides(data, ["a="], "x")["a"] is None
    assert apply_overrides(data, ["a=x=y"], "x")["a"] == "x=y"


def test_merge_keys_and_aliases(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """\
        duration: 1
        plant:
          servos:
            - &base {id: 1, name: base, max_speed: 3.0}
            - <<: *base
              id: 2
            - <<: *base
              id: 3
              name: own
        """
    )
    scenario = load_model(Scenario, write(tmp_path, text))
    servos = [(s.id, s.name, s.max_speed) for s in scenario.plant.servos]
    assert servos == [(1, "base", 3.0), (2, "base", 3.0), (3, "own", 3.0)]


def test_only_plain_values_are_built(tmp_path: Path) -> None:
    text = "a: 2024-01-01\nb: !!str 12\nc: 0x1F\nd: ~\ne: yes\n1: one\nf: 1.5\n"
    data, _ = read_yaml(write(tmp_path, text))
    expected = {"a": "2024-01-01", "b": "12", "c": 31, "d": None, "e": True, "1": "one", "f": 1.5}
    assert data == expected


def test_line_map(tmp_path: Path) -> None:
    _, lines = read_yaml(write(tmp_path, GOOD))
    assert lines.line_of(()) == 1
    assert lines.line_of(("plant",)) == 2
    assert lines.line_of(("plant", "servos", 1)) == 6
    assert lines.line_of(("plant", "servos", 1, "name")) == 7
    assert lines.line_of(("plant", "servos", 1, "nothing", 3)) == 6
    assert lines.line_of(("faults", 0, "servo")) == 10
    assert LineMap().line_of(("a",)) is None


def test_validate_without_lines() -> None:
    with pytest.raises(ScenarioError) as caught:
        validate(Scenario, {"duration": 1, "plant": {"servos": "x"}}, LineMap(), "mem")
    assert [str(p) for p in caught.value.problems] == [
        "mem: plant.servos: Input should be a valid list, got 'x'"
    ]


def test_problem_formatting() -> None:
    assert str(Problem("a.yaml", 12, "plant.servos.2.id", "bad")) == ("a.yaml:12: plant.servos.2.id: bad")
    assert str(Problem("a.yaml", None, "x", "bad")) == "a.yaml: x: bad"
    assert str(Problem("a.yaml", 3, "", "bad")) == "a.yaml:3: bad"
    assert str(Problem("--set", None, "", "two\nlines")) == "--set: two lines"


def test_scenario_error_is_a_config_error() -> None:
    problems = [Problem("a", 1, "x", "one"), Problem("a", 2, "y", "two")]
    error = ScenarioError(problems)
    assert isinstance(error, ConfigError)
    assert error.problems == problems
    assert str(error) == "a:1: x: one\na:2: y: two"


# --------------------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_any_text_loads_or_raises_scenario_error(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "s.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_model(Scenario, path, checks=cross_checks)
    except ScenarioError as error:
        assert error.problems
        assert all(str(problem).startswith(str(path)) for problem in error.problems)


YAMLISH = st.lists(
    st.sampled_from(
        [*": -[]{}!&*#'\"\n?|,.~%@`\t\\", "0", "1.5", "abc", "<<", "&a", "*a", "---", "!!int"]
        + ["duration", "plant", "servos", "faults", "type", "stall", "id", "!!python/name:x"]
    ),
    max_size=30,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=YAMLISH, sets=st.lists(st.text(max_size=12), max_size=2))
def test_yaml_like_text_and_sets_load_or_raise_scenario_error(
    tmp_path_factory: pytest.TempPathFactory, text: str, sets: list[str]
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "s.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_model(Scenario, path, sets, checks=cross_checks)
    except ScenarioError as error:
        assert error.problems
