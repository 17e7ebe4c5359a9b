"""Robots by registration: built-ins and providers registered by others."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from servo_core.errors import ConfigError
from sim_models.robots import BUILTIN_ROBOTS, ROBOTS, Robot, actuated_joints, robot_names, robot_urdf_text

ONE_JOINT = """<robot name="{name}">
  <link name="base"/><link name="arm"/>
  <joint name="j" type="revolute"><parent link="base"/><child link="arm"/>
    <limit lower="-{reach}" upper="{reach}" effort="1" velocity="1"/></joint>
</robot>"""


def test_built_in_robots_are_registered() -> None:
    assert set(BUILTIN_ROBOTS) <= set(robot_names())
    assert "length_m" in ROBOTS.get("pendulum").params  # type: ignore[union-attr]


def test_unknown_robot_lists_the_registered_ones() -> None:
    expected = "unknown robot 'crane'; registered: arm6, koch, pan_tilt, pendulum"
    with pytest.raises(ConfigError, match=expected):
        robot_urdf_text("crane")


@pytest.fixture
def registered() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        ROBOTS.unregister(name)


def test_a_registered_robot_class(registered: list[str]) -> None:
    ROBOTS.register("stick", Robot(lambda reach=1.0: ONE_JOINT.format(name="stick", reach=reach), ("reach",)))
    registered.append("stick")
    assert actuated_joints(robot_urdf_text("stick", reach=0.5)) == {"j": (-0.5, 0.5)}
    with pytest.raises(ConfigError, match="unknown parameter.*length_m; valid parameters: reach"):
        robot_urdf_text("stick", length_m=1.0)


def test_a_registered_plain_callable_takes_its_keywords(registered: list[str]) -> None:
    def stick(*, reach: float = 1.0) -> str:
        return ONE_JOINT.format(name="stick", reach=reach)

    ROBOTS.register("stick2", stick)
    registered.append("stick2")
    assert actuated_joints(robot_urdf_text("stick2", reach=2.0)) == {"j": (-2.0, 2.0)}
    with pytest.raises(ConfigError, match="valid parameters: reach"):
        robot_urdf_text("stick2", mass=1.0)


def test_a_provider_must_return_text(registered: list[str]) -> None:
    ROBOTS.register("broken", Robot(lambda: 42))  # type: ignore[arg-type,return-value]
    registered.append("broken")
    with pytest.raises(ConfigError, match="not URDF text"):
        robot_urdf_text("broken")
