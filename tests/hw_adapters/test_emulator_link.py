"""EmulatorServer.link: a path where no link can be made is a ConfigError naming it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hw_adapters.base import ConfigError
from hw_adapters.emulator import EmulatorServer
from servo_core.catalogue import servo_spec
from servo_core.errors import TwinError
from sim_models.plant import Mount, Plant
from sim_models.robots import actuated_joints, robot_urdf_text
from sim_models.servo.device import VirtualServo


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    urdf = robot_urdf_text("pan_tilt")
    spec = servo_spec("xl430-w250")
    mounts = [Mount(j, VirtualServo(spec, i)) for i, j in enumerate(actuated_joints(urdf), 1)]
    with Plant(urdf, mounts) as plant:
        emulator = EmulatorServer(plant, "dynamixel")
        try:
            yield emulator
        finally:
            emulator.close()


def _unwritable_dir(tmp_path: Path) -> Path:
    """A directory where this process cannot make a link (root ignores permission bits: sysfs then)."""
    ro = tmp_path / "read-only"
    ro.mkdir()
    ro.chmod(0o500)
    if not os.access(ro, os.W_OK):
        return ro
    if Path("/sys/kernel").is_dir():
        return Path("/sys/kernel")
    pytest.skip("no directory here refuses a link to this user")


def test_a_missing_directory_is_a_config_error_naming_it(server: EmulatorServer, tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "servos"
    with pytest.raises(ConfigError, match=f"--link {path}: .*{path.parent}.*No such file or directory"):
        server.link(path)


def test_a_file_in_the_way_of_the_directory_is_a_config_error(server: EmulatorServer, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "servos"
    with pytest.raises(ConfigError, match=f"--link {path}"):
        server.link(path)


def test_an_unwritable_directory_is_a_config_error(server: EmulatorServer, tmp_path: Path) -> None:
    path = _unwritable_dir(tmp_path) / "servotwin-servos"
    with pytest.raises(TwinError, match=f"--link {path}: cannot make a link there") as info:
        server.link(path)
    assert isinstance(info.value, ConfigError)  # what the CLI maps to exit status 2
    assert not path.is_symlink()


def test_a_writable_directory_gets_the_link(server: EmulatorServer, tmp_path: Path) -> None:
    link = server.link(tmp_path / "servos")
    assert os.path.realpath(link) == os.path.realpath(server.device_path)
