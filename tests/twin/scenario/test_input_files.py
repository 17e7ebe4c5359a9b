"""Files a scenario names are read as scenario files are: regular files, size-capped, never whole."""

from __future__ import annotations

import os
import re
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from servo_core.errors import ConfigError
from servo_core.files import MAX_INPUT_FILE_BYTES, InputFileError, read_input_file
from sim_models.robots import robot_urdf_text
from twin.scenario import ScenarioError, load_scenario
from twin.scenario.loader import MAX_FILE_BYTES

from ..conftest import scenario_dict

URDF = robot_urdf_text("pan_tilt")


def sparse(path: Path, size: int) -> Path:
    """A file of `size` bytes that takes no disk space (zeros)."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def test_scenario_and_robot_files_share_one_limit() -> None:
    assert MAX_FILE_BYTES == MAX_INPUT_FILE_BYTES == 8 * 1024 * 1024


def test_a_gigabyte_file_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    big = sparse(tmp_path / "huge.urdf", 1024**3)
    tracemalloc.start()
    try:
        with pytest.raises(InputFileError) as caught:
            read_input_file(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.reason == "file is larger than 8 MiB"
    assert peak < 2 * MAX_INPUT_FILE_BYTES, f"read {peak} bytes into memory"


def test_the_limit_is_inclusive(tmp_path: Path) -> None:
    exact = tmp_path / "exact"
    exact.write_bytes(b"x" * 100)
    assert read_input_file(exact, limit=100) == b"x" * 100
    with pytest.raises(InputFileError, match=r"exact: file is larger than 99 bytes$"):
        read_input_file(exact, limit=99)


def test_a_robot_file_over_the_limit_names_the_file_and_the_limit(tmp_path: Path) -> None:
    big = sparse(tmp_path / "big.urdf", MAX_INPUT_FILE_BYTES + 1)
    with pytest.raises(ConfigError, match=rf"^robot file {re.escape(str(big))}: file is larger than 8 MiB$"):
        robot_urdf_text(str(big))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_robot_file_that_is_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "robot.urdf"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match=rf"^robot file {re.escape(str(fifo))}: is not a regular file$"):
        robot_urdf_text(str(fifo))


def test_a_missing_robot_file_is_named(tmp_path: Path) -> None:
    gone = tmp_path / "gone.urdf"
    with pytest.raises(ConfigError, match=rf"^robot file {re.escape(str(gone))}: file not found$"):
        robot_urdf_text(str(gone))
    folder = f"{tmp_path}{os.sep}"
    with pytest.raises(ConfigError, match=rf"^robot file {re.escape(folder)}: is a directory, not a file$"):
        robot_urdf_text(folder)


def test_a_robot_file_within_the_limit_loads(tmp_path: Path) -> None:
    (tmp_path / "mine.urdf").write_text(URDF, encoding="utf-8")
    assert robot_urdf_text(str(tmp_path / "mine.urdf")) == URDF
    latin = tmp_path / "latin.urdf"
    latin.write_bytes(URDF.replace("pan", "p\xe4n").encode("latin-1"))
    with pytest.raises(
        ConfigError, match=rf"^robot file {re.escape(str(latin))}: file is not UTF-8 text \(byte 0xe4\)$"
    ):
        robot_urdf_text(str(latin))


def test_a_scenario_naming_a_huge_robot_file_gets_a_located_problem(
    write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    sparse(tmp_path / "huge.urdf", 1024**3)
    data = scenario_dict()
    data["plant"]["robot"] = {"urdf": "huge.urdf"}
    path = write_scenario(data)
    line = path.read_text().splitlines().index("    urdf: huge.urdf") + 1
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:{line}: plant.robot.urdf: robot file {tmp_path / 'huge.urdf'}: file is larger than 8 MiB"
    ]
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write_scenario(), ["plant.robot.urdf=huge.urdf"])
    assert [str(p) for p in caught.value.problems] == [
        f"--set plant.robot.urdf=huge.urdf: robot file {tmp_path / 'huge.urdf'}: file is larger than 8 MiB"
    ]


def test_a_scenario_file_over_the_limit_is_refused(tmp_path: Path) -> None:
    big = sparse(tmp_path / "big.yaml", MAX_INPUT_FILE_BYTES + 1)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(big)
    assert [str(p) for p in caught.value.problems] == [f"{big}: file is larger than 8 MiB"]
