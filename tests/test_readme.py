"""The README's promises that a test can hold it to."""

from __future__ import annotations

import re
import textwrap
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


def test_the_writing_your_own_service_walkthrough_runs(tmp_path: Path) -> None:
    """The README's four steps, as a newcomer would copy them, give a passing run."""
    import yaml

    section = README.split("## Writing your own service", 1)[1].split("\n## ", 1)[0]
    code = "\n".join(textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)```", section, re.S))
    (tmp_path / "my_services").mkdir()
    (tmp_path / "my_services" / "blinker.py").write_text(code)
    snippet = yaml.safe_load(textwrap.dedent(re.search(r"```yaml\n(.*?)```", section, re.S).group(1)))
    base = yaml.safe_load((Path(__file__).resolve().parents[1] / "scenarios" / "pan_tilt.yaml").read_text())
    base["python_path"] = snippet["python_path"]
    base["topology"]["services"] += snippet["topology"]["services"]
    node = base["topology"]["services"][0]["node"]
    for svc in snippet["topology"]["services"]:
        svc["node"] = node
    base["assertions"] = snippet["assertions"]
    (tmp_path / "scenarios").mkdir()
    path = tmp_path / "scenarios" / "mine.yaml"
    path.write_text(yaml.safe_dump(base))
    result = twin.run(twin.load(path))
    assert result.passed, result.failures
    assert result.metrics["blinker"]["blinks"] >= 19
    assert result.metrics["events"]["blinks"]["published"] == result.metrics["blinker"]["blinks"]


def test_every_file_the_readme_links_to_is_in_the_repository() -> None:
    root = Path(__file__).resolve().parents[1]
    links = re.findall(r"\]\(([^)#\s]+)\)", README)
    missing = [link for link in links if "://" not in link and not (root / link).exists()]
    assert not missing


def test_the_pytest_example_is_the_shipped_example_file() -> None:
    """The README's pytest example is examples/pytest/test_machine.py, which a test runs."""
    section = README.split("## Test your machine with pytest", 1)[1].split("\n## ", 1)[0]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    shipped = (Path(__file__).resolve().parents[1] / "examples" / "pytest" / "test_machine.py").read_text()
    assert block == shipped
