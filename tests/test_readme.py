"""The README's promises that a test can hold it to."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import twin
from twin.scenario import load_scenario

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_quick_start_is_one_block_of_two_commands() -> None:
    section = README.split("## Quick start", 1)[1]
    block = re.search(r"```\w*\n(.*?)```", section, re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert commands[1] in ci


def test_the_scenario_format_example_is_a_valid_scenario(tmp_path: Path) -> None:
    section = README.split("## Scenario format", 1)[1]
    example = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    path = tmp_path / "example.yaml"
    path.write_text(example)
    scenario = load_scenario(path)
    assert scenario.name == "pan_tilt" and len(scenario.plant.servos) == 2


@pytest.mark.parametrize(
    "path",
    sorted(set(re.findall(r"`(tracking\.[a-z_]+_deg|latency\.command\.p99_ms|commands\.failed)`", README))),
)
def test_metric_paths_named_in_the_readme_exist(path: str) -> None:
    scenario = twin.load(Path(__file__).resolve().parents[1] / "scenarios" / "pan_tilt.yaml")
    from twin.scenario.checks import metric_paths

    assert path in metric_paths(scenario, ["pan", "tilt"])
