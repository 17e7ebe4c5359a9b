"""Problems that come from `--set` overrides name `--set` and the override, not the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from twin.cli import main
from twin.scenario import Problem, ScenarioError, load_scenario

from ..conftest import scenario_dict


@pytest.fixture
def problems_of(write_scenario: Callable[..., Path]) -> Callable[..., list[Problem]]:
    def load(sets: list[str], **changes: object) -> list[Problem]:
        path = write_scenario(**changes)
        with pytest.raises(ScenarioError) as caught:
            load_scenario(path, sets)
        return caught.value.problems

    return load


def test_a_value_that_fails_validation_names_the_override(problems_of) -> None:
    (problem,) = problems_of(["plant.servos.1.limits_deg=[-80]"])
    assert str(problem) == (
        "--set plant.servos.1.limits_deg=[-80]: "
        "limits_deg must be two numbers [low, high] in degrees, got [-80]"
    )
    assert (problem.file, problem.line, problem.path) == ("--set", None, "plant.servos.1.limits_deg")
    assert problem.override == "plant.servos.1.limits_deg=[-80]"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("plant.servos.1.limits_deg=5", "limits_deg must be two numbers [low, high] in degrees, got 5"),
        ("plant.servos.1.limits_deg=[40, -40]", "lower limit must be below upper limit, got [40, -40]"),
        (
            "plant.servos.1.limits_deg=[-80, 3000]",
            "limits [-80, 3000]° are outside the servo's range [-180.0, 179.9]° (after offset and direction)",
        ),
        ("plant.servos.1.limts_deg=[-80, 30]", "unknown field 'limts_deg' (did you mean 'limits_deg'?)"),
        ("plnt.robot=arm6", "plnt: unknown field 'plnt' (did you mean 'plant'?)"),
        ("duration=soon", "Input should be a valid number, got 'soon'"),
        ("plant.servos.7.id=3", "index 7 is out of range: plant.servos has 2 items in {file}"),
        (
            "topology.services.3.rate_hz=fast",
            "Input should be a valid number, unable to parse string as a number",
        ),
        ("faults=[{type: bus_errors, at_s: 0}]", "faults.0.rate: Field required"),
        ("duration", "expected path=value"),
    ],
)
def test_each_kind_of_bad_override_names_it(
    write_scenario: Callable[..., Path], override: str, expected: str
) -> None:
    path = write_scenario()
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, [override])
    assert [str(p) for p in caught.value.problems] == [f"--set {override}: {expected.format(file=path)}"]


def test_the_most_specific_of_several_overrides_is_named(problems_of) -> None:
    servo = "plant.servos.1={id: 2, model: xl430-w250, joint: tilt, limits_deg: [60]}"
    problems = problems_of([servo, "plant.servos.1.id=two"])
    assert [str(p) for p in problems] == [
        "--set plant.servos.1.id=two: Input should be a valid integer, got 'two'",
        f"--set {servo}: plant.servos.1.limits_deg: limits_deg must be two numbers [low, high] in degrees, "
        "got [60]",
    ]


def test_a_later_override_of_a_whole_section_takes_the_blame(problems_of) -> None:
    problems = problems_of(["plant.servos.1.id=two", "plant.servos.1={id: 2, model: xl430-w250}"])
    assert [str(p) for p in problems] == [
        "--set plant.servos.1={id: 2, model: xl430-w250}: plant.servos.1.joint: Field required"
    ]


def test_a_section_problem_caused_by_an_override_keeps_the_file_and_names_the_override(
    write_scenario: Callable[..., Path],
) -> None:
    path = write_scenario()
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, ["plant.servos.1.model=sts3215"])
    (problem,) = caught.value.problems
    servos_line = path.read_text().splitlines().index("  servos:") + 1
    assert str(problem) == (
        f"{path}:{servos_line}: plant.servos: one bus cannot mix Dynamixel and Feetech servos "
        "(with --set plant.servos.1.model=sts3215)"
    )


def test_the_same_problems_in_the_file_name_the_file_and_line(write_scenario: Callable[..., Path]) -> None:
    data = scenario_dict()
    data["plant"]["servos"][1]["limits_deg"] = [-80]
    data["topology"]["links"][0]["between"] = ["ops"]
    path = write_scenario(data)
    text = path.read_text().splitlines()
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    limits = next(k for k, line in enumerate(text, 1) if "- -80" in line) - 1
    between = next(k for k, line in enumerate(text, 1) if "between:" in line)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:{limits}: plant.servos.1.limits_deg: limits_deg must be two numbers [low, high] in degrees, "
        "got [-80]",
        f"{path}:{between}: topology.links.0.between: expected 2 items, got 1: ['ops']",
    ]


def test_twin_run_with_a_bad_override_exits_2_naming_it(
    write_scenario: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scenario()
    argv = ["run", str(path), "--out", str(tmp_path / "r"), "--set", "plant.servos.1.limits_deg=[-80]"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        "--set plant.servos.1.limits_deg=[-80]: limits_deg must be two numbers [low, high] in degrees, "
        "got [-80]\n"
    )
    assert not (tmp_path / "r").exists()
